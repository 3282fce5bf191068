//! Where the benchmark's processes run: the broker on a core of its own, the driver (the
//! bench process: producer and sink) and the relay processes it starts on another.
//!
//! On a machine whose cores are shared by the broker and the relay, every microsecond the
//! relay spends is taken from the broker, so the ratio b/a would measure the route's CPU
//! cost against the broker's rather than what production sees (RabbitMQ on machines of its
//! own). Pinning gives each side one core:
//!
//! - before the private node starts, every thread of this process is placed on the broker's
//!   core, so that the node (`sh` → `rabbitmq-server` → `beam.smp` and its children)
//!   inherits that placement from its start — the Erlang VM then sees one available
//!   processor and sizes its online schedulers for it;
//! - once the node is up, every thread of this process moves to the relay's core (threads
//!   created later inherit it), and the node's threads are placed on the broker's core again
//!   (in case one was created elsewhere).
//!
//! `KNUT_BENCH_PLACEMENT=shared` keeps the old mode: no placement, both share every core.

use std::io;
use std::path::Path;

/// How the broker and the relay are placed on the machine's cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The broker on `broker`, this process (producer, sink, relay) on `relay`.
    Pinned { broker: usize, relay: usize },
    /// No placement: the scheduler spreads everything over every core.
    Shared,
}

impl Placement {
    /// From `KNUT_BENCH_PLACEMENT` (`pinned`, the default, or `shared`) and the cores this
    /// process may run on: the first two of them when pinned.
    pub fn from_env() -> Result<Placement, String> {
        let mode = std::env::var("KNUT_BENCH_PLACEMENT").unwrap_or_else(|_| "pinned".into());
        match mode.as_str() {
            "shared" => Ok(Placement::Shared),
            "pinned" => {
                let cpus = allowed_cpus(0)
                    .map_err(|e| format!("cannot read this process's cores: {e}"))?;
                match cpus.as_slice() {
                    [broker, relay, ..] => Ok(Placement::Pinned {
                        broker: *broker,
                        relay: *relay,
                    }),
                    _ => Err(format!(
                        "KNUT_BENCH_PLACEMENT=pinned needs two cores, this process may use {cpus:?}; \
                         set KNUT_BENCH_PLACEMENT=shared"
                    )),
                }
            }
            other => Err(format!(
                "KNUT_BENCH_PLACEMENT is `{other}`; use `pinned` (broker and relay on a core \
                 each, the default) or `shared`"
            )),
        }
    }

    /// Before the private broker node starts: put this process where the node should run, so
    /// that the node inherits it.
    pub fn before_broker_start(self) -> io::Result<()> {
        match self {
            Placement::Pinned { broker, .. } => pin_process(std::process::id(), broker).map(|_| ()),
            Placement::Shared => Ok(()),
        }
    }

    /// After the broker started: this process to the relay's core, the node (`pid_file`
    /// names its main process, if known) to the broker's. Returns how it is placed, for the
    /// output.
    pub fn after_broker_start(self, pid_file: Option<&Path>) -> io::Result<String> {
        match self {
            Placement::Shared => Ok(
                "shared (no placement: broker, producer, sink and relay share every core)".into(),
            ),
            Placement::Pinned { broker, relay } => {
                pin_process(std::process::id(), relay)?;
                let node = match pid_file.map(broker_pid).transpose()? {
                    Some(pid) => {
                        let threads = pin_process(pid, broker)?;
                        format!("RabbitMQ node (beam pid {pid}, {threads} threads) on CPU {broker}")
                    }
                    None => "the broker is not ours (KNUT_BENCH_AMQP_URL): not placed".into(),
                };
                Ok(format!(
                    "pinned: {node}; the driver (producer, sink) and the relay processes on CPU {relay}"
                ))
            }
        }
    }
}

/// The main process id of the node, from the pid file RabbitMQ writes while it boots.
fn broker_pid(pid_file: &Path) -> io::Result<u32> {
    let text = std::fs::read_to_string(pid_file)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} holds no process id", pid_file.display()),
        )
    })
}

/// The cores thread `tid` may run on (0: the calling thread).
fn allowed_cpus(tid: libc::pid_t) -> io::Result<Vec<usize>> {
    // SAFETY: `set` is a plain bit set of the size passed; the kernel writes at most that.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        set
    };
    // SAFETY: CPU_ISSET only reads the bit set.
    Ok((0..libc::CPU_SETSIZE as usize)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Place thread `tid` on core `cpu` only.
fn pin_thread(tid: libc::pid_t, cpu: usize) -> io::Result<()> {
    // SAFETY: `set` is a plain bit set of the size passed; the kernel only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Place every thread of process `pid` on core `cpu` (a thread's placement is its own, and
/// new threads inherit their creator's). Repeats until a pass finds every thread placed, so
/// that a thread created meanwhile is not missed. Returns the number of threads.
fn pin_process(pid: u32, cpu: usize) -> io::Result<usize> {
    loop {
        let mut threads = 0;
        let mut moved = 0;
        for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let Some(tid) = entry?
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<libc::pid_t>().ok())
            else {
                continue;
            };
            threads += 1;
            match allowed_cpus(tid) {
                Ok(cpus) if cpus == [cpu] => {}
                // A thread that ended meanwhile is no error.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                _ => {
                    moved += 1;
                    match pin_thread(tid, cpu) {
                        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => return Err(e),
                        _ => {}
                    }
                }
            }
        }
        if moved == 0 {
            return Ok(threads);
        }
    }
}

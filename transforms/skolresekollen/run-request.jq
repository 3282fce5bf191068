# A run request — the morning schedule's tick ({trigger: "schedule", firedAt}), the API's
# body ({checks?, backtrackDays?, dryRun?} + trigger "api") or a Metakatalogen address-change
# file ({trigger: "file", file, moves, checks}) — → skolresekollen-run.v1:
# which checks, the day decisions must cover (today in Sweden), and the first day of
# Metakatalogen's address changes to read (today − backtrack days; the backtrack from the
# request, else settings/skolresekollen.yaml's `backtrack_days`, at most 30).
def checks_built: ["guardian-moved", "student-moved", "boarding-allowance", "fritids-fulltime"];

# The schedule's tick is the instant it was due (the same on every instance, so that
# skolresekollen-schedule's idempotent step lets one of them run it); a request by hand is now.
(if .firedAt != null then {local: (.firedAt | to_stockholm), ms: 0}
 else now as $t | {local: ($t | to_stockholm), ms: (($t * 1000 | floor) % 1000)} end) as $when
| $when.local as $local
| (.backtrackDays // $settings.skolresekollen.backtrack_days // 7) as $back
| if ($back | type) != "number" or $back != ($back | floor) or $back < 1 or $back > 30 then
    error("backtrackDays: a whole number of days from 1 to 30 (Metakatalogen answers at most 30)")
  else . end
| (.checks // checks_built) as $checks
| if ($checks - checks_built) != [] then
    error("checks: \($checks - checks_built | join(", ")) is not a check; known: \(checks_built | join(", "))")
  else . end
| {
    runId: ($local[0:10] + "-" + $local[11:19] | gsub("[-:]"; "") | .[0:8] + "-" + .[8:])
           + "-" + ($when.ms | tostring | ("00" + .)[-3:]),
    trigger: (.trigger // "api"),
    requestedAt: $local,
    today: $local[0:10],
    changedDateFrom: ($local[0:10] + "T12:00:00Z" | fromdateiso8601 - $back * 86400 | todate[0:10]),
    checks: $checks,
    dryRun: (.dryRun // false)
  }
  + (if .moves != null then {moves: .moves, file: (.file // "")} else {} end)

# "Se mina pågående ärenden" (issue 12; seed 003): the ongoing cases of the caller and of
# the children in the caller's custody, from case management (case data's errands whose
# stakeholders name the person's personId) and from OeP (the oep-integrator's cases of the
# person as party), each with the right that shows it to the caller:
#   own              — the caller is a stakeholder of the errand, or the OeP case's party;
#   guardian-approve — the case concerns a child under 15 in the caller's custody;
#   guardian-view    — the case concerns a child of 15–17 in the caller's custody;
#   delegation       — the case is of a person who delegated to the caller (within the
#                      delegation's scope: "cases" or one case id);
#   power-of-attorney — the case is of a person whose fullmakt in Mina ombud the caller holds.
#
# Input (fragments/my-cases.yaml): `people` [{personId, right, child?, concerns?, scopes?}] in the order the
# sources were asked — the caller first — with `errandPages` (case data's pages) and
# `oepCases` (CaseEnvelope lists) in the same order, and `errandsMissing` / `oepMissing`
# listing the calls that failed ({index, reason}), and `ombudMissing` (Mina ombud's search,
# when it failed). A person with `scopes` (a delegator) shows only the cases a scope names:
# "cases" all, else a case by its id (an errand also by the id of the OeP case it was opened
# from).
#
# Output: the input without those, and with `cases` [{id, source, title, status, created, updated, right, reference?,
# flowInstanceId?, concerns?}] newest first, and `missing`: the sources that did not answer
# for someone (["casedata"], ["oep"], ["minaombud"]), whose cases are then not all shown. A
# case reached in two ways (the caller's own, and a child's) is shown once, under the first
# right (own before a guardian's, a guardian's before a delegation, a delegation before a
# power of attorney). An errand opened from an OeP case (externalCaseId `OEP-<family>-<id>`)
# and that OeP case are one case: the errand is shown, with the OeP case's id as
# `flowInstanceId`, as the caller's own when the caller posted the OeP case. Closed cases are left out: an errand whose status is `Ärende avslutat`,
# an OeP case whose status is `Avslutat` or `Avbrutet`. `concerns` names the child or
# the delegator ({personId, givenname}); no personnummer is ever in the output.

def titles: {
  LEAVE_OF_ABSENCE: "Ansökan om ledighet",
  SCHOOL_CHOICE: "Skolval",
  IKE: "Ansökan om vuxenutbildning i annan kommun",
  PLACEMENT_CHANGE: "Ändrad placering",
  UNEXCUSED_ABSENCE: "Ogiltig frånvaro"
};
def concerns:
  if .concerns then {concerns: {personId: .concerns.personId, givenname: .concerns.givenname}}
  elif .child then {concerns: {personId: .child.personId, givenname: .child.givenname}}
  else {} end;
# Within a delegator's scopes (a person without scopes: all their cases).
def in_scope($p):
  . as $c
  | $p.scopes == null
    or any($p.scopes[]; . == "cases" or . == $c.id
                        or ($c.flowInstanceId != null and . == "oep-\($c.flowInstanceId)"));
def flow_instance: (.externalCaseId // "") | capture("^OEP-[0-9]+-(?<id>[0-9]+)$").id // null;

. as $in
| [range(0; $in.people | length)] as $indices
| [ $indices[] as $i
    | $in.people[$i] as $p
    | (($in.errandPages[$i].content // [])[]
       | select((.status.statusType // "") != "Ärende avslutat")
       | {id: "casedata-\(.id)", source: "casedata",
          title: (titles[.caseType] // .caseType // "Ärende"),
          status: (.status.statusType // "Mottaget"),
          created, updated: (.updated // .created),
          right: $p.right, reference: .errandNumber, flowInstanceId: flow_instance}
         + ($p | concerns)
       | select(in_scope($p))),
      (($in.oepCases[$i] // [])[]
       | select(.status.name as $s | ["Avslutat", "Avbrutet"] | any(.[]; . == $s) | not)
       | {id: "oep-\(.flowInstanceId)", source: "oep",
          title: (.displayName // "E-tjänst"),
          status: (.status.name // null),
          created, updated: (.statusUpdated // .created),
          right: $p.right, flowInstanceId: (.flowInstanceId | tostring)}
         + ($p | concerns)
       | select(in_scope($p)))
  ] as $all
| ([$all[] | select(.source == "casedata") | .flowInstanceId // empty]) as $opened
| ([$all[] | select(.source == "oep" and .right == "own") | .flowInstanceId]) as $posted
| ($in | del(.people, .callerPersonId, .errandPages, .oepCases, .errandsMissing, .oepMissing, .ombudMissing)) + {
    cases: ($all
            | map(select(.source == "casedata" or (.flowInstanceId as $f | any($opened[]; . == $f) | not))
                  | if .source == "casedata" and (.flowInstanceId as $f | any($posted[]; . == $f))
                    then .right = "own" else . end)
            # The first right wins; a child the case concerns, known from a later way to it,
            # is kept (a guardian's own school choice is still about the child).
            | reduce .[] as $c ({seen: {}, list: []};
                .seen[$c.id] as $at
                | if $at == null then .seen[$c.id] = (.list | length) | .list += [$c]
                  elif $c.concerns != null and .list[$at].concerns == null then .list[$at].concerns = $c.concerns
                  else . end)
            | .list
            | map(with_entries(select(.value != null)))
            | sort_by(.updated // "") | reverse),
    missing: ([(if ($in.errandsMissing // []) | length > 0 then "casedata" else empty end),
               (if ($in.oepMissing // []) | length > 0 then "oep" else empty end),
               (if ($in.ombudMissing // []) | length > 0 then "minaombud" else empty end)])
  }

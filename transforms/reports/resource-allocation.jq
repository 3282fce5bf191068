# The follow-up answer of resource-allocation-followup: per school form, the children
# elevregister has placed at the unit on the month's first day and what the data warehouse
# allocated. A source named under `missing` gives null figures (the answer is partial).
. as $m
| ($m.period + "-01") as $first
| ($m.sources.elevregister.data // null) as $placements
| ($m.sources.datawarehouse // null) as $allocation
| ([($placements // [])[] | select(.startDate <= $first and (.endDate == null or .endDate >= $first))]
   | group_by(.schoolType) | map({key: .[0].schoolType, value: length}) | from_entries) as $placed
| ([($allocation.items // [])[] | select(.schoolType != null)]
   | group_by(.schoolType) | map({key: .[0].schoolType, value: {students: (map(.students) | add), amount: (map(.amount) | add)}}) | from_entries) as $allocated
| {schoolUnitCode: $m.schoolUnitCode,
   schoolUnit: $m.unit.data[0].displayName,
   operator: $m.unit.data[0].parentOrganisation.displayName,
   period: $m.period,
   currency: ($allocation.currency // "SEK"),
   figures: ([($placed | keys[]), ($allocated | keys[])] | unique | map(. as $t | {
      schoolType: $t,
      studentsInRegister: (if $placements == null then null else ($placed[$t] // 0) end),
      studentsAllocated: (if $allocation == null then null else ($allocated[$t].students // 0) end),
      amount: (if $allocation == null then null else ($allocated[$t].amount // 0) end)})),
   total: ($allocation.total // null),
   complete: ($m.missing | length == 0),
   missing: $m.missing}

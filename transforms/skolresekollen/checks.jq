# Skolresekollen's checks of one run: the day's address changes from Metakatalogen
# (`moves`, CitizenWithChangedAddress) joined with the register of granted decisions
# (`decisions`: "person/<personnummer>" → the decisions kept under that person, see
# routes/skolresekollen-register.yaml) → one report per requested check:
#   {run, moves: <count>, reports: [{check, title, control, columns, recipients, rows,
#                                     unchecked}]}
# where each row is {key, school, caseNumber, link, cells} and `cells` follow `columns`, and
# `unchecked` lists the errands of the check's e-service that the register could not read
# ({caseNumber, link, reason}): a report never hides what it could not check.
#
# A decision counts when it is granted, its period covers the run's day, its e-service is
# configured and the errand is not older than that e-service's cut-off
# (settings/skolresekollen.yaml, `eservices`).
#
# guardian-moved (skolskjuts): an applying guardian whose age is within `ages.guardian`
#   moved (role Vårdnadshavare); an errand without applicants counts the moved guardian
#   who has custody of its child (custodianFor). The child moved to another address than
#   every guardian of the errand who moved (role Elev): moving together means the same
#   address, street and postal code.
# student-moved (elevresa): the student, of an age within `ages.student`, moved — only the
#   student's own address counts, not the applicant's.
# boarding-allowance (elevresa): CSN granted the student inackorderingstillägg (`hits`, from
#   skolresekollen-csn-poll) for a period that overlaps the decision's.
# fritids-fulltime (skolskjuts): the child got a full-time fritidshem place (`fritids`, from
#   skolresekollen-fritids-reported and -ist-placements) that began within the decision's
#   period and after the errand was submitted, registered on an applying guardian or on a
#   second guardian who lives at the same address as one (the seed's "sammanboende"; IST's
#   `Placeringsägare`); a place whose source names no owner (an operator's report) counts
#   for the applicants. "Fritidsplats finns" names whose place it is.
#
# Every row says U (utvandrad: unRegCode UV, or an emigrated address) or A (avliden: AV).
# A person with sekretessmarkering (classified "J") gets "Skyddad adress" and J instead of
# the address: nothing of a protected address is written. `key` (case, the person's
# personId and the day of the move; for a boarding allowance the source and its period's
# first day) is what a later run recognises as already sent; it holds no personnummer.
def in_span($span; $today): personnummer_valid and ($span == null or
    (age($today) as $a | $a >= ($span.min // 0) and $a <= ($span.max // 200)));
# A decision that counts on $today (see above).
def counts($today):
  ($settings.skolresekollen.eservices[.familyId]) as $e
  | .granted == true and $e != null
    and (.period.start // "9999") <= $today and $today <= (.period.end // "0000")
    and ($e.submitted_from == null or (.submitted // "")[0:10] >= $e.submitted_from)
    and ($e.version_from == null or ((.flowVersion // "0") | tonumber? // 0) >= $e.version_from);
# Lower case, Swedish letters too (ascii_downcase leaves Å, Ä, Ö), without white space: one
# pass over the code points (a regex per call costs more than the whole check).
def folded: explode
  | map(if . >= 65 and . <= 90 then . + 32
        elif . == 197 or . == 196 or . == 214 or . == 201 or . == 220 then . + 32
        elif . == 32 or . == 9 or . == 10 or . == 13 or . == 160 then empty
        else . end)
  | implode;
def current: [(.addresses // [])[] | select(.status == "Current")] | first // null;
# Where a person lives now, as moving together compares it: street and postal code.
def place: current | if . == null then null
           else [(.address // ""), (.postalCode // "")] | map(folded) | join("|") end;
def protected: (.classified // "" | ascii_downcase) == "j";
def unreg: if .unRegCode == "AV" then "A"
           elif .unRegCode == "UV" or any((.addresses // [])[]; .emigrated == true) then "U"
           else "" end;
def new_address($hidden):
  if protected or $hidden then "Skyddad adress"
  else current | if . == null then ""
       else [(.address // ""), ([.postalCode, .city] | map(select(. != null and . != "")) | join(" "))]
            | map(select(. != "")) | join(", ") end
  end;
def secrecy: if protected then "J" else "" end;
def name: [.givenname, .lastname] | map(select(. != null and . != "")) | join(" ");
def moved_on: (current.nrDate // "")[0:10];
def digits: if type == "string" then explode | map(select(. >= 48 and . <= 57)) | implode else "" end;
# The case's link into OeP (settings' case_link with {caseNumber} replaced).
def case_link($case): ($settings.skolresekollen.case_link // "") | split("{caseNumber}") | join($case);
def keyed_row($key; $d; $cells):
  {key: $key,
   school: ($d.school // ""), caseNumber: $d.caseNumber,
   link: case_link($d.caseNumber),
   cells: ([$d.caseNumber, "\($d.period.start) – \($d.period.end)"] + $cells)};
# A row of a moved person. Its key holds the day of the move; a protected person's move comes
# without its address and date, so its key holds the run's day instead: such a row is sent
# again by each run whose backtrack still covers the change (repeated rather than lost).
# Within a case, guardians' rows ($child false) come before the child's, each by name.
def row($p; $d; $today; $child; $cells):
  keyed_row("\($d.caseNumber)/\($p.personId)/\(($p | moved_on) | if . == "" then "run-" + $today else . end)"; $d; $cells)
  + {order: [$child, ($p | name)]};
def sorted: unique_by(.key) | sort_by(.school, (.caseNumber | tonumber? // 0), .caseNumber, .order, .key)
            | map(del(.order));

$settings.skolresekollen as $s
| .run as $run
| $run.today as $today
| (.decisions // {}) as $register
| [(.moves // [])[] | select(.personNumber != null)] as $moves
# Lookups are built with `reduce … .[k] = v` (changed in place), not `from_entries` (a new
# object per entry): a run may hold 10,000 moves.
| (reduce $moves[] as $p ({}; .[$p.personNumber] = $p)) as $moved
# Who moved, by child: the custodians in the day's changes (custodianFor), for the errands
# without applicants and for "moved together".
| (reduce ($moves[] | . as $p | (.custodianFor // [])[] | [(.personnumber | digits), $p]) as [$child, $p]
     ({}; .[$child] += [$p])) as $custodians_moved
# Everyone of an errand who moved: applicants, custodians of its child, the child.
| def movers($d): [($d.applicants[].personNumber | $moved[.] // empty),
                   ($custodians_moved[$d.student.personNumber] // [])[],
                   ($moved[$d.student.personNumber] // empty)];
  # A protected address is never written, nor one that may be it: when anyone of the
  # errand who moved is protected, no address of the errand's rows is shown.
  def hide($d): any(movers($d)[]; protected);
  [ $moves[] as $p
    | select($p.personNumber | in_span($s.ages.guardian; $today))
    | ( ($register["person/" + $p.personNumber] // [])[]
        | select(.service == "skolskjuts" and counts($today)
                 and any(.applicants[]; .personNumber == $p.personNumber)) ),
      ( ($p.custodianFor // [])[] | (.personnumber | digits) as $child
        | ($register["person/" + $child] // [])[]
        | select(.service == "skolskjuts" and counts($today) and (.applicants | length) == 0
                 and .student.personNumber == $child) )
    | . as $d
    | row($p; $d; $today; false; [($p | new_address(hide($d))), ($p | unreg), ($p | name), "Vårdnadshavare", ($p | secrecy)])
      + {place: ($p | place)}
  ] as $guardian_rows
| (reduce ($guardian_rows[] | select(.place != null) | "\(.caseNumber)|\(.place)") as $k ({}; .[$k] = true))
  as $guardian_places
| [ $moves[] as $c
    | ($register["person/" + $c.personNumber] // [])[]
    | select(.service == "skolskjuts" and counts($today) and .student.personNumber == $c.personNumber)
    | . as $d
    | ($c | place) as $here
    # Moved together: a guardian's row of this errand at the same address covers the child.
    | select($here == null or $guardian_places["\($d.caseNumber)|\($here)"] == null)
    | row($c; $d; $today; true; [($c | new_address(hide($d))), ($c | unreg), ($c | name), "Elev", ($c | secrecy)])
  ] as $child_rows
| ([$guardian_rows[] | del(.place)] + $child_rows) as $guardian_moved
| [ $moves[] as $p
    | select($p.personNumber | in_span($s.ages.student; $today))
    | ($register["person/" + $p.personNumber] // [])[]
    | select(.service == "elevresa" and counts($today) and .student.personNumber == $p.personNumber)
    | row($p; .; $today; true; [($p | new_address(false)), ($p | unreg), ($p | secrecy)])
  ] as $student_moved
| [ (.hits // [])[] as $h
    | ($register["person/" + $h.personNumber] // [])[]
    | select(.service == "elevresa" and counts($today) and .student.personNumber == $h.personNumber
             and ($h.to // "9999") >= .period.start and ($h.from // "0000") <= .period.end)
    | keyed_row("\(.caseNumber)/\($h.source)/\($h.from)"; .;
                [if $h.source == "csn" then "Inläst fil från CSN" else "Ärende i e-tjänst" end])
  ] as $boarding
# The guardians a place is registered on who did not apply, and the applicants, as
# Metakatalogen has them now (`cohabit`: {personNumber, personId} beside `cohabit_people`,
# their CitizenExtended; see routes/skolresekollen-run.yaml).
| (reduce ([.cohabit // [], .cohabit_people // []] | transpose[] | select(.[0] != null and .[1] != null))
     as [$who, $person] ({}; .[$who.personNumber] = $person)) as $people
# One hit per child and day: each source keeps its own (an operator's report must not
# overwrite IST's owners); where both have one, the one that names owners decides.
| [ (.fritids // []) | group_by(.personNumber, .from)[] | max_by(.owners // [] | length) ] as $fritids_hits
| [ $fritids_hits[] as $h
    | ($register["person/" + $h.personNumber] // [])[]
    | select(.service == "skolskjuts" and counts($today) and .student.personNumber == $h.personNumber
             and $h.from >= .period.start and $h.from <= .period.end
             and $h.from >= ((.submitted // "")[0:10]))
    | . as $d
    | [$d.applicants[].personNumber] as $applied
    # Whose place it is: with owners, an applicant's, or a second guardian's who lives at
    # the same address as an applicant (a protected or unknown address cannot be compared:
    # the place is reported, and says so); without owners (an operator's report), the
    # applicants'. An errand without applicants (its form named none) names the owners.
    | (if ($h.owners // []) == [] then
         [[$d.applicants[] | name] | join(", ")]
       elif $applied == [] then
         [$h.owners[] as $o | $people[$o] // null | if . == null then "vårdnadshavare" else name end]
       else
         [ $h.owners[] as $o
           | if any($applied[]; . == $o) then
               ($d.applicants[] | select(.personNumber == $o) | name)
             else
               ($people[$o] // null) as $p
               | ($p | if . == null then null else place end) as $here
               | [$applied[] | ($people[.] // null) | if . == null then null else place end] as $theirs
               | if $here != null and any($theirs[]; . == $here) then $p | name
                 elif $here == null or any($theirs[]; . == null) then
                   "\(if $p == null then "annan vårdnadshavare" else ($p | name) end) (samma adress kunde inte kontrolleras)"
                 else empty end
             end ]
       end) as $holders
    | select($holders != [])
    | keyed_row("\($d.caseNumber)/fritids/\($h.from)"; $d; [($holders | join(", ")), $h.from])
  ] as $fritids
| {
    "guardian-moved": {
      title: "Automatisk avstämning av adress för VH med beviljad Skolskjuts och/eller elev med beviljad Skolskjuts som flyttat.",
      control: "Ändrad folkbokföring",
      columns: ["Ärendenummer i e-tjänsten", "Beslutsperiod", "Ny adress", "U(tvandrad) eller A(vliden)",
                "Namn", "Roll", "Sekretessmarkerad personuppgift"],
      rows: ($guardian_moved | sorted)
    },
    "student-moved": {
      title: "Automatisk avstämning av adress för elev med beviljad Elevresa",
      control: "Ändrad folkbokföring",
      columns: ["Ärendenummer i e-tjänsten", "Beslutsperiod", "Ny adress", "U(tvandrad) eller A(vliden)",
                "Sekretessmarkerad personuppgift"],
      rows: ($student_moved | sorted)
    },
    # The seed repeats check 3's heading here ("Kontroll av: Ändrad folkbokföring"), a copy
    # error: this check is of boarding allowances.
    # The seed's heading for this check repeats check 1's first line; "fritidshemsplats"
    # says what it is about.
    "fritids-fulltime": {
      title: "Automatisk avstämning av fritidshemsplats för VH med beviljad Skolskjuts",
      control: "Fritidshemsplats (heltid)",
      columns: ["Ärendenummer i e-tjänsten", "Beslutsperiod", "Fritidsplats finns", "Heltid från"],
      rows: ($fritids | sorted)
    },
    "boarding-allowance": {
      title: "Automatisk avstämning av inackorderingstillägg för elev med beviljad Elevresa",
      control: "Inackorderingstillägg",
      columns: ["Ärendenummer i e-tjänsten", "Beslutsperiod", "Källa"],
      rows: ($boarding | sorted)
    }
  } as $all
| [(.unchecked // [])[]
   | {service, caseNumber, reason, link: case_link(.caseNumber)}]
  | sort_by((.caseNumber | tonumber? // 0), .caseNumber) as $unchecked
| {"guardian-moved": "skolskjuts", "student-moved": "elevresa", "boarding-allowance": "elevresa",
   "fritids-fulltime": "skolskjuts"} as $service_of
| {run: $run, moves: ($moves | length),
   reports: [$run.checks[] as $check
             | $all[$check]
               + {check: $check, recipients: ($s.reports[$check].recipients // []),
                  unchecked: [$unchecked[] | select(.service == $service_of[$check]) | del(.service)]}]}

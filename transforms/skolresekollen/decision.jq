# A skolskjuts (family 136) or elevresa (family 261) application, as the canonical
# oep-application.v1, → skolresekollen-decision.v1: the case number, the decision and its
# period, the applicants and the student by personnummer (12 digits), the school, and
# `persons`, everyone the decision concerns (the keys it is kept under). Every variant the
# e-service versions write is read (see docs/design/skolresekollen-anchor.md, §2):
#   136 — applicants ValdBarn/Guardians/Guardian/citizenIdentifier; the child ValdBarn
#         (CitizenIdentifier), else UppgifterOmBarnet (UppgifterOmBarnetPersonummer, else
#         tfNummer), else BarnetsUppgifter (Barnets_personummer); BeslutPeriod; Beslut;
#         SkolaAnsokan; OmFritidsplats, OmFritidsplatsAndras, DatumAndradFritidsplats;
#   261 — applicants UppgifterSokande/SocialSecurityNumber (repeated); the student
#         UppgifterBarn/CitizenIdentifier; BeslutetGallerForPerioden; Besked; Skola; Enhet
#         (programme).
# Whether the decision grants or denies is read by how its text starts, case-insensitively,
# from settings/skolresekollen.yaml (`decisions.<family>.granted` / `.denied`).
# An errand that cannot be checked — a decision text that neither grants nor denies (or
# none), a granted decision without its student or its period — is not guessed: the output is
# {caseNumber, familyId, service, unchecked: "<why, in Swedish for the case officers>"},
# which skolresekollen-register keeps
# in the list of unchecked errands that every report shows until the errand is readable.
# An errand of another e-service is an error (a dead letter): it was routed here wrongly.
# A personnummer of 10 digits gets its century (the latest not after this year).
def digits: if type == "string" then gsub("[^0-9]"; "") else null end;
def pnr:
  digits
  | if . == null or . == "" then null
    elif length == 12 then .
    elif length == 10 then
      (now | strftime("%y") | tonumber) as $yy
      | (if (.[0:2] | tonumber) <= $yy then "20" else "19" end) + .
    else . end;
def person($number; $given; $family):
  ($number | pnr) as $n
  | if $n == null then empty
    else {personNumber: $n, givenname: $given, lastname: $family} | with_entries(select(.value != null))
    end;
def listed: if . == null then [] elif type == "array" then . else [.] end;
def period($p): {start: $p.StartDate, end: $p.EndDate} | with_entries(select(.value != null))
                | if . == {} then null else . end;
# "granted", "denied" or null, by how the decision text starts (case-insensitive).
def outcome($grants; $denies):
  (. // "" | ascii_downcase) as $d
  | if ($denies | any(. as $p | $d | startswith($p | ascii_downcase))) then "denied"
    elif ($grants | any(. as $p | $d | startswith($p | ascii_downcase))) then "granted"
    else null end;

. as $app
| ($settings.skolresekollen.decisions // {}) as $texts
| .values as $v
| (.familyId | tostring) as $family
| if $family == "136" then
    {
      service: "skolskjuts",
      applicants: [$v.ValdBarn.Guardians.Guardian | listed | .[]
                   | person(.citizenIdentifier; .firstname; .lastname)],
      student: (first(
        if ($v.ValdBarn.CitizenIdentifier | pnr) != null then
          person($v.ValdBarn.CitizenIdentifier; $v.ValdBarn.Firstname; $v.ValdBarn.Lastname)
        elif (($v.UppgifterOmBarnet.UppgifterOmBarnetPersonummer // $v.UppgifterOmBarnet.tfNummer) | pnr) != null then
          person($v.UppgifterOmBarnet.UppgifterOmBarnetPersonummer // $v.UppgifterOmBarnet.tfNummer;
                 $v.UppgifterOmBarnet.Fornamn; $v.UppgifterOmBarnet.Efternamn)
        else
          person($v.BarnetsUppgifter.Barnets_personummer; $v.BarnetsUppgifter.Barnets_fornamn;
                 $v.BarnetsUppgifter.Barnets_efternamn)
        end
      ) // null),
      period: period($v.BeslutPeriod),
      decision: $v.Beslut,
      outcome: ($v.Beslut | outcome($texts["136"].granted // []; $texts["136"].denied // [])),
      school: $v.SkolaAnsokan,
      daycare: ({place: $v.OmFritidsplats, changed: $v.OmFritidsplatsAndras,
                 changedFrom: $v.DatumAndradFritidsplats.StartDate}
                | with_entries(select(.value != null)))
    }
  elif $family == "261" then
    {
      service: "elevresa",
      applicants: [$v.UppgifterSokande | listed | .[]
                   | person(.SocialSecurityNumber; .Firstname; .Lastname)],
      student: (first(person($v.UppgifterBarn.CitizenIdentifier; $v.UppgifterBarn.Firstname;
                             $v.UppgifterBarn.Lastname)) // null),
      period: period($v.BeslutetGallerForPerioden),
      decision: $v.Besked,
      outcome: ($v.Besked | outcome($texts["261"].granted // []; $texts["261"].denied // [])),
      school: $v.Skola,
      programme: $v.Enhet
    }
  else
    error("family \($family) is not an e-service of Skolresekollen (136 skolskjuts, 261 elevresa)")
  end
| {caseNumber: ($app.flowInstanceId | tostring), familyId: $family,
   flowVersion: $app.flowVersion, submitted: $app.posted, status: $app.status} + .
| (if .outcome == null then "beslutstexten varken beviljar eller avslår"
   elif .outcome == "granted" and .student == null then "ingen elev: barnets eller elevens personnummer saknas"
   elif .outcome == "granted" and .period == null then "beviljat utan beslutsperiod"
   else null end) as $unchecked
| if $unchecked != null then {caseNumber, familyId, service, unchecked: $unchecked}
  else
    .granted = (.outcome == "granted")
    | del(.outcome)
    | .persons = ([.applicants[].personNumber, .student.personNumber] | map(select(. != null)) | unique)
    | with_entries(select(.value != null))
  end

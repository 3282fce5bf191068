# A skolskjuts (family 136) or elevresa (family 261) application, as the canonical
# oep-application.v1, → skolresekollen-decision.v1: the case number, the decision and its
# period, the applicants and the student by personnummer (12 digits), the school, and
# `persons`, everyone the decision concerns (the keys it is kept under). Every variant the
# e-service versions write is read (see docs/design/skolresekollen-anchor.md, §2):
#   136 — applicants ValdBarn/Guardians/Guardian/citizenIdentifier; the child ValdBarn
#         (CitizenIdentifier), else UppgifterOmBarnet (UppgifterOmBarnetPersonummer, else
#         tfNummer), else BarnetsUppgifter (Barnets_personummer); BeslutPeriod; Beslut
#         (denied: starts with "Avslås"); SkolaAnsokan; OmFritidsplats, OmFritidsplatsAndras,
#         DatumAndradFritidsplats;
#   261 — applicants UppgifterSokande/SocialSecurityNumber (repeated); the student
#         UppgifterBarn/CitizenIdentifier; BeslutetGallerForPerioden; Besked (denied:
#         starts with "Eleven har inte rätt till elevresa"); Skola; Enhet (programme).
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

. as $app
| .values as $v
| (.familyId | tostring) as $family
| if $family == "136" then
    {
      service: "skolskjuts",
      applicants: [$v.ValdBarn.Guardians.Guardian | listed | .[]
                   | person(.citizenIdentifier; .firstname; .lastname)],
      student: (
        if ($v.ValdBarn.CitizenIdentifier | pnr) != null then
          person($v.ValdBarn.CitizenIdentifier; $v.ValdBarn.Firstname; $v.ValdBarn.Lastname)
        elif (($v.UppgifterOmBarnet.UppgifterOmBarnetPersonummer // $v.UppgifterOmBarnet.tfNummer) | pnr) != null then
          person($v.UppgifterOmBarnet.UppgifterOmBarnetPersonummer // $v.UppgifterOmBarnet.tfNummer;
                 $v.UppgifterOmBarnet.Fornamn; $v.UppgifterOmBarnet.Efternamn)
        else
          person($v.BarnetsUppgifter.Barnets_personummer; $v.BarnetsUppgifter.Barnets_fornamn;
                 $v.BarnetsUppgifter.Barnets_efternamn)
        end
      ),
      period: {start: $v.BeslutPeriod.StartDate, end: $v.BeslutPeriod.EndDate},
      decision: $v.Beslut,
      denied: (($v.Beslut // "") | startswith("Avslås")),
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
      student: person($v.UppgifterBarn.CitizenIdentifier; $v.UppgifterBarn.Firstname; $v.UppgifterBarn.Lastname),
      period: {start: $v.BeslutetGallerForPerioden.StartDate, end: $v.BeslutetGallerForPerioden.EndDate},
      decision: $v.Besked,
      denied: (($v.Besked // "") | startswith("Eleven har inte rätt till elevresa")),
      school: $v.Skola,
      programme: $v.Enhet
    }
  else
    error("family \($family) is not an e-service of Skolresekollen (136 skolskjuts, 261 elevresa)")
  end
| {caseNumber: ($app.flowInstanceId | tostring), familyId: $family,
   flowVersion: $app.flowVersion, submitted: $app.posted, status: $app.status} + .
| .granted = (.decision != null and (.denied | not))
| del(.denied)
| .persons = ([.applicants[].personNumber, .student.personNumber] | map(select(. != null)) | unique)
| with_entries(select(.value != null))

# An OeP FlowInstance export (as xml_to_json gives it) → the canonical application
# (oep-application.v1): ids, flow, status and poster from the header, and the e-service's
# answers by query name — a query with `Value` as that value, a structured one as an object
# of its fields (without QueryID and Name), a repeated one (listed in xml_to_json's
# `arrays`) as a list of those. Used by every route that reads exports.
def answer:
  if type == "array" then map(answer)
  elif type == "object" and has("Value") then .Value
  elif type == "object" then del(.QueryID, .Name)
  else . end;
.FlowInstance as $f
| {
    flowInstanceId: $f.Header.FlowInstanceID,
    familyId: $f.Header.Flow.FamilyID,
    flowVersion: $f.Header.Flow.Version,
    flowName: $f.Header.Flow.Name,
    status: $f.Header.Status.Name,
    posted: $f.Header.Posted,
    poster: ({ firstname: $f.Header.Poster.Firstname, lastname: $f.Header.Poster.Lastname,
               email: $f.Header.Poster.Email } | with_entries(select(.value != null))),
    values: (($f.Values // {}) | with_entries(.value |= answer))
  }

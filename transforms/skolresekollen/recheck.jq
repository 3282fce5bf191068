# The run's rows held against each errand's status in OeP now. `current` holds OeP's
# answers ({flowInstanceID, familyId, status}: adapters/oep.yaml, get-instance-status) for
# the rows' distinct case numbers, in sorted order, null where OeP did not answer
# (`not_rechecked` says why). A row of an errand
# whose status is none of its e-service's granted statuses (settings/skolresekollen.yaml,
# decisions.<family>.statuses, case-insensitive) is left out: it was revoked or closed since
# the register read it. An errand OeP did not answer for, or of an e-service without
# `statuses`, keeps its rows, as the register has it. Both keys are taken off the message.
. as $run
| ($settings.skolresekollen.decisions // {}) as $decisions
| ([.reports[].rows[].caseNumber] | unique) as $cases
| (reduce range(0; $cases | length) as $i ({};
    ($run.current[$i] // null) as $h
    | ($decisions[($h.familyId // "" | tostring)].statuses // null) as $granted
    | if $h == null or $granted == null then .
      else (($h.status // "") | ascii_downcase) as $status
      | .[$cases[$i]] = ($granted | map(ascii_downcase) | any(.[]; . == $status))
      end)) as $still
| del(.current, .not_rechecked)
| .reports |= map(.rows |= map(select($still[.caseNumber] != false)))

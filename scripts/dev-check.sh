#!/usr/bin/env bash
# dev-check.sh: against a running `make dev`, walk the lifecycle checks of the
# lifecycle issue: a partially paid invoice found by a visibility query, the
# reminder-run and statement-run Schedules listed, and triggering reminder-run
# twice on the invoice's issue day emailing no reminder (the invoice and the
# payment emails just went out; the reminder follows the next day, once: the
# e2e tests TestWalkNoReminderOnIssueDay and TestRemainingBalanceReminderOnce
# run those days).
set -euo pipefail
DATA=${BILLFLOW_DATA_DIR:-.data}
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
API=$(j "d['api_url']" < "$DATA/dev.json")
KEY=$(j "d['api_key']" < "$DATA/dev.json")
UI=$(j "d['temporal_ui_url']" < "$DATA/dev.json")
MAIL=$(j "d['mail_url']" < "$DATA/dev.json")
# The demo practice's own namespace, where its invoices and Schedules live.
NS=$(j "d['temporal_namespace']" < "$DATA/dev.json")
TODAY=$(date -u +%F)
auth=(-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json')

CL=$(curl -sf -XPOST "$API/v1/clients" "${auth[@]}" -d '{"name":"Dev Check","email":"dev.check@example.com"}' | j "d['id']")
INV=$(curl -sf -XPOST "$API/v1/invoices" "${auth[@]}" -d "{\"client_id\":\"$CL\",\"due_date\":\"$TODAY\",\"items\":[{\"service_date\":\"$TODAY\",\"description\":\"Session\",\"unit_amount\":32000}],\"partial_payments\":{\"enabled\":true}}" | j "d['id']")
echo "invoice $INV: $(curl -sf -XPOST "$API/v1/invoices/$INV/payments" "${auth[@]}" -d '{"amount":12000,"payment_method":"pm_card_visa"}' | j "d['invoice']['status'], d['invoice']['amount_due']")"

found=""
for _ in $(seq 30); do
  found=$(curl -sf "$UI/api/v1/namespaces/$NS/workflows?query=InvoiceStatus%3D%22partially_paid%22" | j "' '.join(e['execution']['workflowId'] for e in d.get('executions',[]))")
  [[ " $found " == *" invoice-$INV "* ]] && break
  sleep 1
done
[[ " $found " == *" invoice-$INV "* ]] || { echo "FAIL: InvoiceStatus=\"partially_paid\" does not find invoice-$INV"; exit 1; }
echo "ok: InvoiceStatus=\"partially_paid\" finds invoice-$INV"

scheds=$(curl -sf "$UI/api/v1/namespaces/$NS/schedules" | j "' '.join(sorted(s['scheduleId'] for s in d.get('schedules',[])))")
[[ " $scheds " == *" reminder-run "* && " $scheds " == *" statement-run "* ]] || { echo "FAIL: schedules are: $scheds"; exit 1; }
echo "ok: schedules $scheds"

jar=$(mktemp); trap 'rm -f "$jar"' EXIT
curl -sf -c "$jar" -o /dev/null "$UI/"
csrf=$(awk '$6=="_csrf"{print $7}' "$jar")
reminders() { curl -sf "$MAIL/api/messages" | j "sum(1 for m in d if m['subject'].startswith('Reminder') and 'dev.check@example.com' in m['to'][0])"; }
trigger() {
  curl -sf -b "$jar" -XPOST -H "X-CSRF-TOKEN: $csrf" -H 'Content-Type: application/json' \
    "$UI/api/v1/namespaces/$NS/schedules/reminder-run/patch" \
    -d '{"patch":{"triggerImmediately":{"overlapPolicy":"SCHEDULE_OVERLAP_POLICY_ALLOW_ALL"}}}' >/dev/null
}
before=$(reminders)
trigger; sleep 10
first=$(reminders)
trigger; sleep 10
second=$(reminders)
echo "reminder emails for this client: before $before, after the first trigger $first, after the second $second"
[[ $first -eq $before && $second -eq $before ]] || { echo "FAIL: expected no reminder on the invoice's issue day"; exit 1; }
runs=$(curl -sf "$UI/api/v1/namespaces/$NS/workflows?query=WorkflowType%3D%22ReminderRunWorkflow%22" | j "len(d.get('executions',[]))")
[[ $runs -ge 2 ]] || { echo "FAIL: reminder-run did not run ($runs runs)"; exit 1; }
echo "ok: reminder-run ran ($runs runs) and sent no reminder on the issue day"

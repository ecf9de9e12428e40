"""schemathesis hooks for .ci/clients (loaded through SCHEMATHESIS_HOOKS).

schemathesis runs as a logged-in user and learns ids from the answers it gets, so it soon aims the
account operations at that user's own account (its id comes back from GET /v1/me and every list).
Some of those end every session of the account they are aimed at, by design: a reported certificate
loss (R-ACC-09), an HR event that cancels the account (R-ACC-05), a suspension (R-ACC-07), IP
bindings that no longer hold the session's address (R-ACC-11), and handing over the account-manager
role (R-ACC-06). Aimed at the runner itself they would end its session mid-run, and every later case
would only test the 401. So such a request is aimed at an unknown account instead (it still runs,
with the rest of its generated input, and must be answered as documented); aimed at anyone else it
goes as generated. .ci/clients checks after the run that the session is still live, so anything
this misses fails the run rather than going unnoticed.
"""

import os
import uuid

import schemathesis

OWN_USER_ID = os.environ["IMMILINK_CLIENTS_USER_ID"]

# Operations that end the sessions of the account named by their `user_id` path parameter.
ENDS_SESSIONS_OF_PATH_ACCOUNT = {
    ("POST", "/v1/accounts/{user_id}/certificate-loss"),
    ("POST", "/v1/accounts/{user_id}/hr-events"),
    ("POST", "/v1/accounts/{user_id}/suspension"),
    ("PUT", "/v1/accounts/{user_id}/ips"),
}
HANDOVER = ("POST", "/v1/account-manager-handovers")


def _names_runner(value):
    return isinstance(value, str) and value.strip().lower() == OWN_USER_ID.lower()


@schemathesis.hook
def before_call(context, case, kwargs):
    operation = (case.method.upper(), case.path)
    parameters = case.path_parameters
    if operation in ENDS_SESSIONS_OF_PATH_ACCOUNT and parameters and _names_runner(parameters.get("user_id")):
        parameters["user_id"] = str(uuid.uuid4())
    if operation == HANDOVER and isinstance(case.body, dict) and _names_runner(case.body.get("from_user_id")):
        case.body["from_user_id"] = str(uuid.uuid4())

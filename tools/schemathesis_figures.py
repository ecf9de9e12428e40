"""Figures of a schemathesis run, from its NDJSON report, checked against the document it ran on.

Usage: schemathesis_figures.py REPORT.ndjson OPENAPI.json LABEL [EXCLUDED_OPERATION_ID...]

Prints one line of figures (operations tested, test cases, requests sent, answers by class, 5xx,
failed checks) and, if any, every (operation, status) answer the document does not list and every
failed check. Exits 1 when a request got a 5xx, a check failed, or an operation of the document
(other than the excluded ones) was never tested, as when the time budget ran out first: the figures
and the verdict come from the same report (the caller checks schemathesis's own exit code too).
"""

import base64
import collections
import json
import sys


def documented_operations(document):
    """(method path) -> (operation id, documented statuses)."""
    operations = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                statuses = set(operation.get("responses", {}))
                operations[f"{method.upper()} {path}"] = (operation.get("operationId"), statuses)
    return operations


def main():
    report, openapi, label = sys.argv[1:4]
    excluded = set(sys.argv[4:])
    with open(openapi, encoding="utf-8") as file:
        operation_ids = documented_operations(json.load(file))
    documented = {operation: statuses for operation, (_, statuses) in operation_ids.items()}
    operations = set()
    cases = 0
    requests = 0
    method_probes = 0
    classes = collections.Counter()
    server_errors = []
    undocumented = collections.Counter()
    failed_checks = collections.Counter()
    with open(report, encoding="utf-8") as file:
        for line in file:
            event = json.loads(line)
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished["recorder"]
            cases += len(recorder.get("cases", {}))
            for case_id, checks in recorder.get("checks", {}).items():
                for check in checks:
                    if check.get("status") == "failure":
                        case = recorder["cases"].get(case_id, {}).get("value", {})
                        failed_checks[(check["name"], f"{case.get('method')} {case.get('path')}")] += 1
            for case_id, interaction in recorder.get("interactions", {}).items():
                response = interaction.get("response")
                if response is None:
                    continue
                case = recorder["cases"].get(case_id, {}).get("value", {})
                operation = f"{case.get('method')} {case.get('path')}"
                requests += 1
                if operation in documented:
                    operations.add(operation)
                else:
                    # The coverage phase also sends methods a path does not have (expecting 405).
                    method_probes += 1
                status = response["status_code"]
                classes[f"{status // 100}xx"] += 1
                if status >= 500:
                    body = base64.b64decode(response.get("content", {}).get("$base64", "")).decode("utf-8", "replace")
                    server_errors.append(f"{operation} -> {status}: {body[:300]}")
                if operation in documented and str(status) not in documented[operation]:
                    undocumented[(operation, status)] += 1
    untested = sorted(
        operation
        for operation, (operation_id, _) in operation_ids.items()
        if operation not in operations and operation_id not in excluded
    )
    answers = ", ".join(f"{name} {count}" for name, count in sorted(classes.items()))
    print(
        f"{label}: {len(operations)} of {len(documented)} operations tested, {cases} test cases, {requests} requests "
        f"({answers}; {method_probes} with an undocumented method), "
        f"5xx: {len(server_errors)}, failed checks: {sum(failed_checks.values())}"
    )
    for (operation, status), count in sorted(undocumented.items()):
        print(f"  undocumented: {operation} answered {status} ({count}x)")
    for (check, operation), count in sorted(failed_checks.items()):
        print(f"  failed: {check} on {operation} ({count}x)")
    for error in server_errors[:20]:
        print(f"  server error: {error}")
    for operation in untested:
        print(f"  not tested (the time budget ran out?): {operation}")
    return 1 if server_errors or failed_checks or untested else 0


if __name__ == "__main__":
    sys.exit(main())

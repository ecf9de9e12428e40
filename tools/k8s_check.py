#!/usr/bin/env python3
"""The checks .ci/k8s runs on every rendered kustomize target, besides kubernetes-validate.

    k8s_check.py --repo DIR --core-dir OUT RENDERED.yaml...

For each rendered target (`kubectl kustomize` output; the file's name is the target's):
- splits the objects: those of Kubernetes itself go to OUT/<name>.yaml, for kubernetes-validate and
  its bundled schemas; CloudNativePG's (postgresql.cnpg.io, CRDs with no bundled schema) are checked
  here, narrowly: the fields immilink relies on, their types, and nothing unknown beside them;
- checks the project's own rules, which no schema knows: every pod runs as uid 10001, non-root,
  read-only root filesystem, no capability, RuntimeDefault seccomp, no service-account token, with
  requests and limits; every CronJob forbids concurrent runs and calls a command its binary provides
  (read from services/<service>/src/main.rs); every pod that opens a database does not migrate at
  start and its service has a migrate Job; every workload is selected by a NetworkPolicy of its own
  under a default deny; prod targets pin every image by digest.
Prints what it checked and every error; exits 1 when there is any.
"""

import argparse
import pathlib
import re
import sys

import yaml

CRD_GROUPS = ("postgresql.cnpg.io",)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
UID = 10001


class Errors:
    def __init__(self):
        self.items = []

    def add(self, target, obj, message):
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}" if obj else "-"
        self.items.append(f"{target}: {where}: {message}")


def group_of(obj):
    api = obj.get("apiVersion", "")
    return api.split("/")[0] if "/" in api else ""


def pod_template(obj):
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return spec.get("template", {})


def selects(selector, labels):
    """A LabelSelector against a pod's labels (matchLabels and matchExpressions)."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def env_of(container):
    return {e["name"]: e for e in container.get("env") or []}


def service_of(image):
    """immilink/identity:0.1.0, registry/immilink/identity@sha256:... -> identity"""
    return re.split(r"[:@]", image.rsplit("/", 1)[-1])[0]


def commands_of(repo, service, cache={}):
    """The subcommands a service binary matches on (`Some("link-sweep") =>` in its main.rs)."""
    if service not in cache:
        main = repo / ("gateway" if service == "gateway" else f"services/{service}") / "src/main.rs"
        text = main.read_text() if main.exists() else ""
        cache[service] = set(re.findall(r'Some\("([a-z-]+)"\)', text))
    return cache[service]


def check_pod(target, obj, errors):
    pod = pod_template(obj).get("spec", {})
    if pod.get("automountServiceAccountToken") is not False:
        errors.add(target, obj, "automountServiceAccountToken must be false")
    sc = pod.get("securityContext", {})
    expected = {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID}
    for key, value in expected.items():
        if sc.get(key) != value:
            errors.add(target, obj, f"securityContext.{key} must be {value}, is {sc.get(key)!r}")
    if sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        errors.add(target, obj, "securityContext.seccompProfile.type must be RuntimeDefault")
    for container in (pod.get("initContainers") or []) + (pod.get("containers") or []):
        name = container.get("name")
        csc = container.get("securityContext", {})
        if csc.get("allowPrivilegeEscalation") is not False:
            errors.add(target, obj, f"container {name}: allowPrivilegeEscalation must be false")
        if csc.get("readOnlyRootFilesystem") is not True:
            errors.add(target, obj, f"container {name}: readOnlyRootFilesystem must be true")
        if csc.get("capabilities", {}).get("drop") != ["ALL"]:
            errors.add(target, obj, f"container {name}: capabilities.drop must be [ALL]")
        resources = container.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(resources.get(kind, {})):
                errors.add(target, obj, f"container {name}: resources.{kind} needs cpu and memory")


def check_commands(target, obj, repo, errors):
    """CronJobs and Jobs run a command their service's binary provides; no pod that opens a
    database migrates at start except the migrate Jobs."""
    for container in pod_template(obj).get("spec", {}).get("containers") or []:
        service = service_of(container.get("image", ""))
        args = container.get("args") or []
        if obj["kind"] in ("CronJob", "Job"):
            if not args:
                errors.add(target, obj, "a Job or CronJob must name the command it runs (args)")
            elif args[0] not in commands_of(repo, service):
                errors.add(target, obj, f"immilink-{service} has no command {args[0]!r}")
        env = env_of(container)
        opens_database = any(re.fullmatch(r"IMMILINK_[A-Z_]+_DATABASE_URL", name) for name in env)
        if opens_database and args[:1] != ["migrate"]:
            value = env.get("IMMILINK_MIGRATE_ON_START", {}).get("value")
            if value != "false":
                errors.add(target, obj, "opens a database, so IMMILINK_MIGRATE_ON_START must be \"false\"")


def check_cnpg(target, obj, objects, errors):
    """CloudNativePG objects, narrowly: what immilink uses, typed, and no unknown key beside it."""
    spec = obj.get("spec") or {}

    def require(cond, message):
        if not cond:
            errors.add(target, obj, message)

    def known(mapping, allowed, where):
        unknown = set(mapping) - set(allowed)
        require(not unknown, f"{where}: unknown field(s) {sorted(unknown)}")

    def secret_ref(value, where):
        require(isinstance(value, dict) and isinstance(value.get("name"), str) and value["name"],
                f"{where}.name must be a Secret name")

    require(obj.get("apiVersion") == "postgresql.cnpg.io/v1", "apiVersion must be postgresql.cnpg.io/v1")
    if obj["kind"] == "Cluster":
        known(spec, ["instances", "imageName", "storage", "enableSuperuserAccess", "affinity", "bootstrap",
                     "managed", "postgresql", "backup", "monitoring", "resources"], "spec")
        require(isinstance(spec.get("instances"), int) and spec["instances"] >= 1, "spec.instances: an integer >= 1")
        storage = spec.get("storage") or {}
        known(storage, ["size", "storageClass"], "spec.storage")
        require(re.fullmatch(r"[0-9]+(Mi|Gi|Ti)", str(storage.get("size", ""))), "spec.storage.size: a quantity")
        require(isinstance(spec.get("enableSuperuserAccess", False), bool), "spec.enableSuperuserAccess: a boolean")
        initdb = (spec.get("bootstrap") or {}).get("initdb") or {}
        known(initdb, ["database", "owner", "secret"], "spec.bootstrap.initdb")
        for key in ("database", "owner"):
            require(isinstance(initdb.get(key), str) and initdb[key], f"spec.bootstrap.initdb.{key}: a name")
        secret_ref(initdb.get("secret"), "spec.bootstrap.initdb.secret")
        roles = (spec.get("managed") or {}).get("roles") or []
        require(isinstance(roles, list), "spec.managed.roles: a list")
        for i, role in enumerate(roles):
            where = f"spec.managed.roles[{i}]"
            known(role, ["name", "ensure", "login", "passwordSecret", "comment", "inherit", "connectionLimit"], where)
            require(isinstance(role.get("name"), str) and role["name"], f"{where}.name: a role name")
            require(role.get("ensure", "present") in ("present", "absent"), f"{where}.ensure: present or absent")
            require(isinstance(role.get("login", False), bool), f"{where}.login: a boolean")
            secret_ref(role.get("passwordSecret"), f"{where}.passwordSecret")
    elif obj["kind"] == "Database":
        known(spec, ["cluster", "name", "owner", "ensure", "databaseReclaimPolicy"], "spec")
        cluster = (spec.get("cluster") or {}).get("name")
        clusters = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "Cluster"}
        require(cluster in clusters, f"spec.cluster.name {cluster!r}: no such Cluster in the target")
        for key in ("name", "owner"):
            require(isinstance(spec.get(key), str) and spec[key], f"spec.{key}: a name")
        require(spec.get("databaseReclaimPolicy", "retain") in ("retain", "delete"),
                "spec.databaseReclaimPolicy: retain or delete")
        if cluster in clusters:
            cspec = clusters[cluster]["spec"]
            owners = {r["name"] for r in (cspec.get("managed") or {}).get("roles") or []}
            owners.add(((cspec.get("bootstrap") or {}).get("initdb") or {}).get("owner"))
            require(spec.get("owner") in owners, f"spec.owner {spec.get('owner')!r} is no role of {cluster}")
    else:
        errors.add(target, obj, "no check for this CloudNativePG kind")


def check_cnpg_layout(target, objects, errors):
    """One database and one owner role per service with a database, in each Cluster's target."""
    clusters = [o for o in objects if o.get("kind") == "Cluster"]
    if not clusters:
        return
    databases = {}
    for cluster in clusters:
        initdb = cluster["spec"].get("bootstrap", {}).get("initdb", {})
        databases[initdb.get("database")] = initdb.get("owner")
    for db in (o for o in objects if o.get("kind") == "Database"):
        databases[db["spec"].get("name")] = db["spec"].get("owner")
    expected = {f"immilink_{s}": f"immilink_{s}" for s in ("identity", "broker", "audit", "vendors")}
    if databases != expected:
        errors.add(target, None, f"CloudNativePG databases and owners {databases}, expected {expected}")


def check_target(name, objects, repo, errors):
    workloads = [o for o in objects if o.get("kind") in WORKLOAD_KINDS]
    policies = [o for o in objects if o.get("kind") == "NetworkPolicy"]
    if not any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
               for p in policies):
        errors.add(name, None, "no default-deny NetworkPolicy (empty podSelector, Ingress and Egress)")
    migrate_images = set()
    for obj in workloads:
        for container in pod_template(obj).get("spec", {}).get("containers") or []:
            if (container.get("args") or [])[:1] == ["migrate"]:
                migrate_images.add(container.get("image"))
    for obj in workloads:
        check_pod(name, obj, errors)
        check_commands(name, obj, repo, errors)
        if obj["kind"] == "CronJob" and obj["spec"].get("concurrencyPolicy") != "Forbid":
            errors.add(name, obj, "concurrencyPolicy must be Forbid")
        labels = pod_template(obj).get("metadata", {}).get("labels", {})
        own = [p for p in policies if p["spec"].get("podSelector") and selects(p["spec"]["podSelector"], labels)]
        if not own:
            errors.add(name, obj, "no NetworkPolicy selects its pods (beyond the default deny)")
        for container in pod_template(obj).get("spec", {}).get("containers") or []:
            image = container.get("image", "")
            opens_database = any(e.endswith("_DATABASE_URL") for e in env_of(container))
            if opens_database and image not in migrate_images:
                errors.add(name, obj, f"no migrate Job runs {image}")
            if name.startswith("prod") and "@sha256:" not in image:
                errors.add(name, obj, f"image {image} is not pinned by digest")
    crds = [o for o in objects if group_of(o) in CRD_GROUPS]
    for obj in crds:
        check_cnpg(name, obj, objects, errors)
    check_cnpg_layout(name, objects, errors)
    return workloads, policies, crds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", type=pathlib.Path, required=True)
    parser.add_argument("--core-dir", type=pathlib.Path, required=True)
    parser.add_argument("rendered", type=pathlib.Path, nargs="+")
    args = parser.parse_args()
    args.core_dir.mkdir(parents=True, exist_ok=True)
    errors = Errors()
    for path in args.rendered:
        name = path.stem
        objects = [o for o in yaml.safe_load_all(path.read_text()) if o]
        if not objects:
            errors.add(name, None, "renders no object")
            continue
        for obj in objects:
            if not obj.get("kind") or not obj.get("metadata", {}).get("name"):
                errors.add(name, obj, "an object without kind or name")
        core = [o for o in objects if group_of(o) not in CRD_GROUPS]
        args.core_dir.joinpath(path.name).write_text(yaml.safe_dump_all(core, sort_keys=False))
        workloads, policies, crds = check_target(name, objects, args.repo, errors)
        print(f"{name}: {len(objects)} objects ({len(core)} Kubernetes for kubernetes-validate, "
              f"{len(crds)} CloudNativePG checked here); {len(workloads)} workloads, "
              f"{len(policies)} NetworkPolicies checked")
    for error in errors.items:
        print(f"ERROR {error}")
    print(f"project checks: {len(errors.items)} errors")
    return 1 if errors.items else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Fails when a package in Cargo.lock needs a newer Rust than the workspace's rust-version.

The Dockerfile builds on the official Rust image of that version, with --locked, on a machine
unlike CI's (whose toolchain may be newer): a dependency update that raises the needed Rust
would otherwise break only the image build, which CI cannot run. Reads `cargo metadata`.
"""
import json
import subprocess
import sys


def version(text):
    return tuple(int(part) for part in text.split(".")[:3]) + (0,) * (3 - len(text.split(".")[:3]))


def main():
    metadata = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked"], check=True, capture_output=True, text=True
        ).stdout
    )
    members = set(metadata["workspace_members"])
    ours = {p["rust_version"] for p in metadata["packages"] if p["id"] in members}
    if len(ours) != 1 or None in ours:
        sys.exit(f"the workspace members must share one rust-version, found {sorted(map(str, ours))}")
    workspace = ours.pop()
    with open("Dockerfile", encoding="utf-8") as dockerfile:
        pinned = [line.split("=", 1)[1].strip() for line in dockerfile if line.startswith("ARG RUST_VERSION=")]
    if pinned != [workspace]:
        sys.exit(f"the Dockerfile's RUST_VERSION {pinned} is not the workspace's rust-version {workspace}")
    # Every resolved package counts (those of other platforms too: the check stays on the safe side).
    built = {node["id"] for node in metadata["resolve"]["nodes"]}
    newer = sorted(
        (p["name"], p["version"], p["rust_version"])
        for p in metadata["packages"]
        if p["id"] in built and p.get("rust_version") and version(p["rust_version"]) > version(workspace)
    )
    if newer:
        listing = "\n".join(f"  {name} {ver} needs Rust {rust}" for name, ver, rust in newer)
        sys.exit(f"rust-version is {workspace} in Cargo.toml (and the Dockerfile), but:\n{listing}")
    print(f"rust-version {workspace}: every locked package builds with it")


if __name__ == "__main__":
    main()

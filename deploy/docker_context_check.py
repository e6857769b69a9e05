"""Checks the Docker build context that .dockerignore leaves (no Docker daemon needed).

Applies .dockerignore to the repository's tracked files with Docker's rules (moby/patternmatcher: patterns
cleaned like Go's filepath.Clean, `*`/`?`/`[...]` within one path element, `**` across elements, a pattern
also matches every path under a matching directory, `!` re-includes, the last matching pattern wins), then:

- every source of every COPY/ADD in the Dockerfile (other than `--from` a stage, and other than in the stages of
  OTHER_CONTEXT_STAGES, which are built from another context directory) has files in the context;
- the files the image's cargo build reads are in it: the workspace manifests and Cargo.lock, build.rs and
  the .proto files it compiles, each member's lib/bin targets, the [[bench]] files Cargo.toml declares, and
  every file a non-test source includes with include_str!/include_bytes! (a literal path);
- what must stay out is out: .git, target/, rust-toolchain.toml (the image's toolchain builds).

With --build it also copies the context to target/docker-context and runs the Dockerfile's cargo command
there as `cargo check` (offline, dev profile, no --target, otherwise the same flags; RUSTUP_TOOLCHAIN set to rust-toolchain.toml's channel, the
image's Rust), sharing target/ so that dependencies already built are reused: a file the build needs but
.dockerignore drops fails that build.

Usage: python3 deploy/docker_context_check.py [--build]    (exit status 0 = all passed)
Stdlib only: deploy/check.sh runs it before its virtualenv steps.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

try:
    import tomllib
except ImportError:  # Python 3.10
    raise SystemExit("FAIL docker context: needs Python 3.11+ (tomllib); set PYTHON=... for deploy/check.sh")

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
# `--target prebuilt` copies a binary built beforehand from a context directory of its own
# (deploy/image-check.sh makes it), not from the repository's.
OTHER_CONTEXT_STAGES = {"prebuilt"}
MUST_BE_OUT = [".git/HEAD", "target/debug", "rust-toolchain.toml", "fuzz/Cargo.toml", "deploy/check.sh"]


# ---------------------------------------------------------------------------------------------------------
# Docker's .dockerignore semantics


def clean(path: str) -> str:
    """Go's filepath.Clean for a relative slash path ("" -> ".")."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and parts and parts[-1] != "..":
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts) or "."


def read_patterns(text: str) -> list[tuple[bool, str]]:
    """(exclusion, cleaned pattern) per line, as moby/patternmatcher/ignorefile reads them."""
    patterns = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = clean(line.lstrip("/")) if line.lstrip("/") else "/"
        patterns.append((exclusion, line))
    return patterns


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """moby/patternmatcher's regexp for a pattern (path separator "/")."""
    out = "^"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            if pattern[i + 1:i + 2] == "*":
                i += 1
                if pattern[i + 1:i + 2] == "/":
                    i += 1
                if i + 1 == len(pattern):
                    out += ".*"  # "**" at the end matches everything
                else:
                    out += "(.*/)?"  # "**/" matches any number of directories, or none
            else:
                out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise ValueError(f"bad pattern {pattern!r}")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out += "[" + body.replace("\\", "\\\\") + "]"
            i = end
        elif ch == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + "$")


class Ignore:
    def __init__(self, text: str) -> None:
        self.patterns = [(exclusion, pattern_regex(p), p) for exclusion, p in read_patterns(text)]

    def excluded(self, path: str) -> bool:
        """Whether `path` (a file, relative slash path) is left out of the context."""
        path = clean(path)
        parents = [str(p) for p in reversed(PurePosixPath(path).parents) if str(p) != "."]
        matched = False
        for exclusion, regex, _ in self.patterns:
            if any(regex.match(candidate) for candidate in [path, *parents]):
                matched = not exclusion
        return matched


# ---------------------------------------------------------------------------------------------------------
# What the build needs


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def dockerfile_copy_sources() -> list[tuple[int, str]]:
    """(line, source) of every COPY/ADD from the build context."""
    sources = []
    logical = ""
    start = 0
    stage = ""
    for number, line in enumerate(DOCKERFILE.read_text().splitlines(), 1):
        if not logical:
            start = number
        if line.strip().startswith("#") and not logical:
            continue
        if line.rstrip().endswith("\\"):
            logical += line.rstrip()[:-1] + " "
            continue
        logical += line
        words = shlex.split(logical, comments=False) if logical.strip() else []
        logical = ""
        if words and words[0].upper() == "FROM":
            lowered = [w.lower() for w in words]
            stage = words[lowered.index("as") + 1] if "as" in lowered[:-1] else ""
            continue
        if not words or words[0].upper() not in ("COPY", "ADD") or stage in OTHER_CONTEXT_STAGES:
            continue
        args = words[1:]
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        if len(args) == 1 and args[0].startswith("["):
            raise SystemExit(f"Dockerfile:{start}: JSON-form COPY not supported by this check")
        sources.extend((start, src) for src in args[:-1])
    return sources


def in_context(source: str, context: set[str]) -> bool:
    src = clean(source.lstrip("/"))
    if src == ".":
        return bool(context)
    regex = pattern_regex(src)
    return any(regex.match(f) or f.startswith(src + "/") for f in context)


INCLUDE = re.compile(r'include_(?:str|bytes)!\(\s*"([^"]+)"\s*\)')


def non_test_text(text: str) -> str:
    """The source without its `#[cfg(test)] mod … { … }` blocks (brace-counted; good enough here)."""
    out = []
    i = 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth = 1
        j = m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


GATED_MOD = re.compile(r'#\[cfg\(feature\s*=\s*"[^"]+"\)\]\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;')


def feature_gated(rs: Path) -> bool:
    """Whether `rs` is (inside) a module declared under `#[cfg(feature = ...)]` (not built without
    default features)."""
    src = ROOT / "src"
    for parent_file in src.rglob("*.rs"):
        for name in GATED_MOD.findall(parent_file.read_text()):
            # The module's directory: beside lib.rs/main.rs/mod.rs, else in a directory named after the file.
            base = parent_file.parent if parent_file.name in ("lib.rs", "main.rs", "mod.rs") \
                else parent_file.parent / parent_file.stem
            if rs in (base / f"{name}.rs", base / name / "mod.rs") or (base / name) in rs.parents:
                return True
    return False


def required_files() -> list[tuple[str, str]]:
    """(file, why) that the image's cargo build reads."""
    need: list[tuple[str, str]] = [("Cargo.toml", "workspace manifest"), ("Cargo.lock", "--locked")]
    root = tomllib.loads((ROOT / "Cargo.toml").read_text())
    members = root.get("workspace", {}).get("members", ["."])
    for member in members:
        base = PurePosixPath(member)
        manifest = root if member == "." else tomllib.loads((ROOT / member / "Cargo.toml").read_text())

        def at(rel: str) -> str:
            return clean(str(base / rel))

        need.append((at("Cargo.toml"), f"manifest of workspace member {member}"))
        package = manifest.get("package", {})
        build = package.get("build", "build.rs" if (ROOT / member / "build.rs").exists() else None)
        if build:
            need.append((at(build), f"build script of {member}"))
        lib = manifest.get("lib")
        if lib is not None or (ROOT / member / "src/lib.rs").exists():
            need.append((at((lib or {}).get("path", "src/lib.rs")), f"lib target of {member}"))
        for kind, default_dir in (("bin", "src/bin"), ("bench", "benches"), ("example", "examples"),
                                  ("test", "tests")):
            for target in manifest.get(kind, []):
                default = "src/main.rs" if kind == "bin" and target["name"] == package.get("name") \
                    else f"{default_dir}/{target['name']}.rs"
                need.append((at(target.get("path", default)), f"[[{kind}]] {target['name']} of {member}"))
    for script in run_scripts():
        need.append((script, "run by the Dockerfile's build stage"))
    build_rs = (ROOT / "build.rs").read_text() if (ROOT / "build.rs").exists() else ""
    for proto in sorted(set(re.findall(r'"([^"=]+\.proto)"', build_rs))):
        need.append((clean(proto), "compiled by build.rs"))
    # Files that a source compiled without default features includes (the image's build).
    for rs in sorted((ROOT / "src").rglob("*.rs")):
        if feature_gated(rs):
            continue
        for rel in INCLUDE.findall(non_test_text(rs.read_text())):
            target = clean(str(PurePosixPath(rs.relative_to(ROOT).parent) / rel))
            need.append((target, f"include_*! in {rs.relative_to(ROOT)}"))
    return need


# ---------------------------------------------------------------------------------------------------------


def self_test() -> None:
    """Docker's rules on known cases, so that a change to the matcher cannot pass the checks by accident."""
    cases = [
        ("*\n!src/\n", {"src/a/b.rs": False, "src": False, "Cargo.toml": True, "target/x": True}),
        ("target\n", {"target/debug/x": True, "src/target/x": False, "targets": False}),
        ("**/*.md\n!README.md\n", {"docs/a.md": True, "a.md": True, "README.md": False, "x/README.md": True}),
        ("src\n!src/keep.rs\n", {"src/keep.rs": False, "src/other.rs": True}),
        ("/proto/\n", {"proto/service.proto": True, "a/proto/x": False}),
        ("# comment\n?.rs\n[ab].txt\n", {"x.rs": True, "xy.rs": False, "a.txt": True, "c.txt": False,
                                           "# comment": False}),
    ]
    for text, expected in cases:
        ignore = Ignore(text)
        for path, excluded in expected.items():
            if ignore.excluded(path) != excluded:
                raise SystemExit(f"self-test: {text!r} {path}: excluded={ignore.excluded(path)}, "
                                 f"Docker's rules say {excluded}")


def main(argv: list[str]) -> int:
    self_test()
    build = argv == ["--build"]
    if argv and not build:
        print(f"usage: {sys.argv[0]} [--build]", file=sys.stderr)
        return 2
    ignore = Ignore(DOCKERIGNORE.read_text())
    files = tracked_files()
    context = {f for f in files if not ignore.excluded(f)}
    problems = []
    sources = dockerfile_copy_sources()
    for line, src in sources:
        if not in_context(src, context):
            problems.append(f"Dockerfile:{line}: COPY {src}: nothing of it is in the build context")
    for path, why in required_files():
        if path not in context:
            problems.append(f"{path} ({why}) is {'excluded by .dockerignore' if path in files else 'not tracked'}")
    for path in MUST_BE_OUT:
        if not ignore.excluded(path):
            problems.append(f"{path} is in the build context; .dockerignore must leave it out")
    if problems:
        for p in problems:
            print(f"FAIL docker context: {p}")
        return 1
    print(f"docker context: {len(context)} of {len(files)} tracked files; the Dockerfile's "
          f"{len(sources)} COPY source(s) and every file the cargo build reads are in it; "
          f"{', '.join(p.split('/')[0] for p in MUST_BE_OUT)} are not")
    if build:
        return build_context(context)
    return 0


RUN_SCRIPT = re.compile(r"\bdeploy/[\w.-]+\.sh\b")


def run_lines() -> list[str]:
    """The Dockerfile's RUN instructions, continuation lines joined."""
    return [line for line in DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
            if re.match(r"\s*RUN\s", line)]


def run_scripts() -> list[str]:
    """Scripts of the repository that a RUN instruction runs (from the build context)."""
    return sorted({m for line in run_lines() for m in RUN_SCRIPT.findall(line)})


def cargo_command() -> list[str] | None:
    """The image's cargo command: in a RUN instruction, or in the script one runs (deploy/release-build.sh
    keeps it in a bash array at the start of a line, `cargo=(cargo rustc ...)`)."""
    for line in run_lines():
        m = re.search(r"\b(cargo build[^&]*)", line)
        if m:
            return shlex.split(m.group(1))
    for script in run_scripts():
        m = re.search(r"^cargo=\((cargo [^)]*)\)", (ROOT / script).read_text(), re.MULTILINE)
        if m:
            return shlex.split(m.group(1))
    return None


def build_context(context: set[str]) -> int:
    """The Dockerfile's cargo command (as `cargo check`) in a copy of the context."""
    command = cargo_command()
    if command is None:
        print("FAIL docker context: no `cargo build`/`cargo rustc` in the Dockerfile's RUN or the script it runs")
        return 1
    # `check` in the dev profile: the same files are read as by a release build, and the dependencies
    # that CI's clippy step built are reused.
    command[1] = "check"
    command = [a for a in command if a != "--release"]
    # `--target "$TARGET"` (the static link's triple) is the host's: the same files are read without it.
    if "--target" in command:
        i = command.index("--target")
        del command[i:i + 2]
    command.insert(2, "--offline")
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    env = dict(os.environ, RUSTUP_TOOLCHAIN=channel, CARGO_TARGET_DIR=str(ROOT / "target"))
    # A fixed place (emptied first), so that repeated runs reuse one set of artifacts in target/.
    # RUSTUP_TOOLCHAIN overrides the repository's rust-toolchain.toml that rustup would find above it.
    copy = ROOT / "target" / "docker-context"
    shutil.rmtree(copy, ignore_errors=True)
    for f in context:
        dest = copy / f
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, dest)
    result = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        print(f"FAIL docker context: `{shlex.join(command)}` in the context (Rust {channel}):\n"
              f"{result.stderr[-4000:]}")
        return 1
    print(f"docker context: `{shlex.join(command)}` passes in a copy of the context (Rust {channel})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

# The helper AgentScope's Glob tool runs in a sandboxed workspace (`python3 <gateway home>/_glob_helper.py
# --pattern=P --base-dir=D`). Its bootstrap writes one; images that skip the bootstrap must bring their
# own, with the same contract: a JSON array on stdout of the files under D whose path relative to D
# matches P, newest first, and [] when D is not a directory. In P, `*` and `?` stay within one path
# segment, `**` stands for any number of directories, `/` or `\` separate segments, and every other
# character is literal. Directories reached through symlinks are not searched.
import argparse
import json
import os
import re
import sys

WILDCARD = re.compile(r"[*?]")


def segment_regex(segment: str) -> str:
    return "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in segment)


def matching_files(pattern: str, base_dir: str) -> list[str]:
    segments = [s for s in re.split(r"[\\/]+", pattern) if s not in ("", ".")]
    if not segments:
        return []
    # Leading directories without wildcards are walked into directly instead of searched for.
    literal = 0
    while literal < len(segments) - 1 and segments[literal] != ".." and not WILDCARD.search(segments[literal]):
        literal += 1
    root = os.path.join(base_dir, *segments[:literal])
    rest = segments[literal:]

    parts = []
    for i, segment in enumerate(rest):
        last = i == len(rest) - 1
        if segment == "**":
            parts.append(".+" if last else "(?:[^/]+/)*")
        else:
            parts.append(segment_regex(segment) + ("" if last else "/"))
    wanted = re.compile("".join(parts))
    # Without `**` no match lies deeper than the pattern has segments.
    max_depth = None if "**" in rest else len(rest) - 1

    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        depth = 0 if rel_dir == "." else rel_dir.count(os.sep) + 1
        if max_depth is not None and depth >= max_depth:
            dirnames.clear()
        for name in filenames:
            rel = name if depth == 0 else f"{rel_dir}/{name}"
            if wanted.fullmatch(rel):
                found.append(os.path.join(dirpath, name))
    return found


def mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description="files under a directory that match a glob pattern, newest first")
    parser.add_argument("--pattern", required=True)
    parser.add_argument("--base-dir", required=True)
    args = parser.parse_args()
    files = matching_files(args.pattern, args.base_dir) if os.path.isdir(args.base_dir) else []
    files.sort(key=mtime, reverse=True)
    json.dump(files, sys.stdout)


if __name__ == "__main__":
    main()

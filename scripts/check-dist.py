#!/usr/bin/env python3
"""Checks a release archive built by scripts/dist.sh; prints TAP, exits non-zero on a failure.

    check-dist.py ARCHIVE.zip [COMMIT]

META.json against the PGXN Meta Spec v1.0.0 (https://pgxn.org/meta/spec.txt): the required keys
and the types and values the spec gives them; the archive's layout (one top directory
<name>-<version>/); its contents against the commit's tracked files (everything tracked, nothing
else but the two generated files); and one version in META.json, the control file and the
Makefile. Python's standard library only.
"""
import json
import re
import subprocess
import sys
import zipfile

# The spec's license strings.
LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd", "gfdl_1_2",
    "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1",
    "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source", "restricted",
    "unrestricted", "unknown",
}
TOP_KEYS = {
    "name", "abstract", "description", "version", "maintainer", "license", "provides", "meta-spec",
    "no_index", "prereqs", "release_status", "resources", "generated_by", "tags",
}
REQUIRED = ["name", "abstract", "maintainer", "license", "provides", "meta-spec", "version"]
# SemVer 1.0.0, which the spec names: MAJOR.MINOR.PATCH, an optional -prerelease of [0-9A-Za-z-].
SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[A-Za-z][0-9A-Za-z-]*)?$")
# A prereq's version: 0 (any), a SemVer, or comparisons joined by commas.
VERSION_RANGE = re.compile(r"^\s*(0|(([<>]=?|[=!]=)\s*)?\S+)(\s*,\s*(([<>]=?|[=!]=)\s*)?\S+)*\s*$")
GENERATED = {"META.json", "pg_gateway.control"}

results = []


def check(ok, what, why=""):
    results.append((bool(ok), what, why))
    return bool(ok)


def is_str(v):
    return isinstance(v, str) and v.strip() != ""


def is_term(v):
    # A "term": at least two characters, no slash, backslash, colon, whitespace or control character.
    return isinstance(v, str) and len(v) >= 2 and not re.search(r"[/\\:\s\x00-\x1f\x7f]", v)


def license_ok(v):
    if isinstance(v, str):
        return v in LICENSES
    if isinstance(v, list):
        return bool(v) and all(isinstance(x, str) and x in LICENSES for x in v)
    if isinstance(v, dict):
        return bool(v) and all(is_str(k) and is_str(u) and re.match(r"^[a-z][a-z0-9+.-]*://", u) for k, u in v.items())
    return False


def meta_problems(meta, files, top):
    """Spec violations of META.json, given the archive's file names (relative to the top)."""
    bad = []
    for key in REQUIRED:
        if key not in meta:
            bad.append("required key %r is missing" % key)
    for key in meta:
        if key not in TOP_KEYS and not re.match(r"^[xX]_", key):
            bad.append("unknown key %r (custom keys start with x_)" % key)
    if "name" in meta and not is_term(meta["name"]):
        bad.append("name %r is not a term" % meta["name"])
    if "version" in meta and not (isinstance(meta["version"], str) and SEMVER.match(meta["version"])):
        bad.append("version %r is not a SemVer" % meta.get("version"))
    for key in ("abstract", "description", "generated_by"):
        if key in meta and not is_str(meta[key]):
            bad.append("%s is not a non-empty string" % key)
    m = meta.get("maintainer")
    if "maintainer" in meta and not (is_str(m) or (isinstance(m, list) and m and all(is_str(x) for x in m))):
        bad.append("maintainer is not a string or a list of strings")
    if "license" in meta and not license_ok(meta["license"]):
        bad.append("license %r is not one of the spec's strings (or a name -> URL object)" % meta["license"])
    spec = meta.get("meta-spec")
    if "meta-spec" in meta and not (isinstance(spec, dict) and spec.get("version") == "1.0.0"):
        bad.append("meta-spec.version is not 1.0.0")
    provides = meta.get("provides")
    if "provides" in meta:
        if not isinstance(provides, dict) or not provides:
            bad.append("provides is not a non-empty object")
        else:
            for ext, p in provides.items():
                if not is_term(ext) or not isinstance(p, dict):
                    bad.append("provides.%s is not an object under a term" % ext)
                    continue
                for key in p:
                    if key not in ("file", "version", "abstract", "docfile") and not re.match(r"^[xX]_", key):
                        bad.append("provides.%s has unknown key %r" % (ext, key))
                if not is_str(p.get("file")):
                    bad.append("provides.%s.file is missing" % ext)
                elif p["file"] not in files:
                    bad.append("provides.%s.file %s is not in the archive" % (ext, p["file"]))
                if not (isinstance(p.get("version"), str) and SEMVER.match(p["version"])):
                    bad.append("provides.%s.version %r is not a SemVer" % (ext, p.get("version")))
                if "docfile" in p and p["docfile"] not in files:
                    bad.append("provides.%s.docfile %s is not in the archive" % (ext, p["docfile"]))
                if "abstract" in p and not is_str(p["abstract"]):
                    bad.append("provides.%s.abstract is not a non-empty string" % ext)
    if "release_status" in meta and meta["release_status"] not in ("stable", "testing", "unstable"):
        bad.append("release_status %r is not stable, testing or unstable" % meta["release_status"])
    resources = meta.get("resources", {})
    if not isinstance(resources, dict):
        bad.append("resources is not an object")
    else:
        allowed = {"homepage": None, "bugtracker": {"web", "mailto"}, "repository": {"url", "web", "type"}}
        for key, value in resources.items():
            if re.match(r"^[xX]_", key):
                continue
            if key not in allowed:
                bad.append("resources has unknown key %r" % key)
            elif allowed[key] is None:
                if not is_str(value):
                    bad.append("resources.%s is not a URL" % key)
            elif not isinstance(value, dict) or not value or not all(
                    (k in allowed[key] or re.match(r"^[xX]_", k)) and is_str(v) for k, v in value.items()):
                bad.append("resources.%s is not an object of %s" % (key, sorted(allowed[key])))
    prereqs = meta.get("prereqs", {})
    if not isinstance(prereqs, dict):
        bad.append("prereqs is not an object")
    else:
        for phase, relations in prereqs.items():
            if phase not in ("configure", "build", "test", "runtime", "develop") or not isinstance(relations, dict):
                bad.append("prereqs.%s is not a phase" % phase)
                continue
            for relation, deps in relations.items():
                if relation not in ("requires", "recommends", "suggests", "conflicts") or not isinstance(deps, dict):
                    bad.append("prereqs.%s.%s is not a relationship" % (phase, relation))
                    continue
                for dep, version in deps.items():
                    if not (version == 0 or (isinstance(version, str) and VERSION_RANGE.match(version))):
                        bad.append("prereqs.%s.%s.%s version %r is not a version range" % (phase, relation, dep, version))
    if "tags" in meta and not (isinstance(meta["tags"], list) and all(is_str(t) and len(t) < 256 for t in meta["tags"])):
        bad.append("tags is not a list of short strings")
    no_index = meta.get("no_index", {})
    if not (isinstance(no_index, dict) and all(k in ("file", "directory") and isinstance(v, list) for k, v in no_index.items())):
        bad.append("no_index is not an object of file/directory lists")
    return bad


def main():
    archive, commit = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "HEAD"
    with zipfile.ZipFile(archive) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        read = lambda n: z.read(n).decode()  # noqa: E731
        tops = {n.split("/", 1)[0] for n in z.namelist()}
        ours = [t for t in tops if re.match(r"^pg_gateway-\d", t)]
        check(len(tops) == 1 and ours and all("/" in n for n in names),
              "one top directory pg_gateway-<version>/", "tops: %s" % sorted(tops))
        # The other checks look inside pg_gateway-<version>/ even when something lies beside it.
        top = ours[0] if len(ours) == 1 else ""
        files = {n[len(top) + 1:] for n in names if n.startswith(top + "/")}
        get = lambda f: read(top + "/" + f) if f in files else None  # noqa: E731

        raw = get("META.json")
        try:
            meta = json.loads(raw) if raw is not None else None
        except ValueError as e:
            meta = None
            raw = "unparsable: %s" % e
        check(isinstance(meta, dict), "META.json is in the archive and is a JSON object", str(raw)[:200])
        meta = meta if isinstance(meta, dict) else {}
        problems = meta_problems(meta, files, top)
        check(not problems, "META.json follows the PGXN Meta Spec 1.0.0", "; ".join(problems))

        control = get("pg_gateway.control") or ""
        m = re.search(r"^default_version\s*=\s*'([^']*)'", control, re.M)
        control_version = m.group(1) if m else None
        check(control_version and "@" not in control, "the generated pg_gateway.control is in the archive",
              "default_version: %r" % control_version)
        m = re.search(r"^EXTVERSION\s*=\s*(\S+)", get("Makefile") or "", re.M)
        make_version = m.group(1) if m else None
        versions = {
            "META.json version": meta.get("version"),
            "provides.pg_gateway.version": (meta.get("provides") or {}).get("pg_gateway", {}).get("version"),
            "control default_version": control_version,
            "Makefile EXTVERSION": make_version,
            "directory name": top[len("pg_gateway-"):] or None,
        }
        check(None not in versions.values() and len(set(versions.values())) == 1,
              "one version in META.json, the control file, the Makefile and the directory name",
              ", ".join("%s %s" % kv for kv in versions.items()))
        check(control_version is not None and ("sql/pg_gateway--%s.sql" % control_version in files or any(
            re.match(r"^sql/pg_gateway--.*--%s\.sql$" % re.escape(control_version), f) for f in files)),
            "a script installs or updates to the default version", "default_version %r" % control_version)

        tracked = set(subprocess.run(["git", "ls-tree", "-r", "--name-only", commit], check=True,
                                     capture_output=True, text=True).stdout.split("\n")) - {""}
        scripts = {f for f in tracked if re.match(r"^sql/pg_gateway--.*\.sql$", f)}
        wanted = scripts | {"Makefile", "pg_gateway.control.in", "META.json.in"} | \
            {f for f in tracked if re.match(r"^(README|LICENSE|LICENCE|COPYING)", f)}
        missing = sorted(wanted - files)
        check(scripts and not missing, "every install and upgrade script, Makefile, README and LICENSE (if any) are in it",
              "missing: %s" % missing)
        extra = sorted(files - tracked - GENERATED)
        check(not extra, "nothing in it but tracked files and the two generated ones",
              "untracked: %s" % extra[:20])
        check(not any(re.match(r"^(build[^/]*|node_modules|results|tmp_check|log)/", f) or "/node_modules/" in f
                      or f.endswith((".o", ".so", ".bc")) for f in files),
              "no build output or node_modules")
        check(not (tracked - files - {".gitignore", ".gitattributes"} - {f for f in tracked if f.startswith(".")}),
              "every tracked file is in it", "left out: %s" % sorted(tracked - files)[:20])

    print("1..%d" % len(results))
    for n, (ok, what, why) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", n, what))
        if not ok and why:
            print("#   %s" % why)
    return 0 if all(ok for ok, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

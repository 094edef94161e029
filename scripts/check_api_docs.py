#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks docs/api.md against the public headers (include/weft/*.hpp, cmake/version.hpp.in).

  1. Every public class, free function and namespace-scope variable of namespace weft
     appears in docs/api.md as `weft::Name`.
  2. Every public member function of a public class (its own, those of its public bases,
     and those it re-exports with a using-declaration) appears, as `name(`, `.name(` or
     `Class::name`, in a section of docs/api.md whose heading (or a parent heading) names
     the class.
  3. Every `weft::Name` in docs/api.md names something public in namespace weft; every
     `Class::member` with Class a public weft class names one of its public members or
     types; every WEFT_* macro in docs/api.md is defined by a public header or version.hpp.

Usage: check_api_docs.py [--root DIR] [--self-test]
  --self-test  also checks that the checker fails on a docs/api.md with a class left out,
               a member left out and a name that does not exist (so it cannot pass by
               accident).
Exits 1 and prints each problem when the check fails.
"""

import argparse
import re
import sys
import tempfile
from pathlib import Path

KEYWORDS = {
    "if", "for", "while", "switch", "return", "sizeof", "alignof", "decltype", "noexcept",
    "static_assert", "requires", "throw", "catch", "new", "delete", "operator", "template",
    "explicit", "constexpr", "static_cast", "reinterpret_cast", "const_cast", "dynamic_cast",
}


def strip_code(text):
    """Removes comments, string and character literals, and preprocessor lines."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + c)
            i = j + 1
        else:
            out.append(c)
            i += 1
    lines = []
    cont = False
    for line in "".join(out).split("\n"):
        is_pp = cont or line.lstrip().startswith("#")
        cont = is_pp and line.rstrip().endswith("\\")
        lines.append("" if is_pp else line)
    return "\n".join(lines)


class Scope:
    def __init__(self, kind, name="", access="public", bases=()):
        self.kind = kind  # namespace | class | block
        self.name = name
        self.access = access
        self.bases = list(bases)


class Model:
    def __init__(self):
        self.classes = {}  # qualified name -> {"public": bool, "members": set, "bases": [...], "types": set}
        self.free = set()  # free functions and variables of namespace weft
        self.macros = set()


def statement_name(stmt):
    """The declared function name of a statement that declares or defines one, else None."""
    s = re.sub(r"^\s*template\s*<", "<", stmt)
    # Drop a leading template parameter list.
    if s.startswith("<"):
        depth = 0
        for k, ch in enumerate(s):
            depth += (ch == "<") - (ch == ">")
            if depth == 0:
                s = s[k + 1:]
                break
    s = re.sub(r"\[\[.*?\]\]", " ", s)
    m = re.search(r"(~?[A-Za-z_]\w*)\s*\(", s)
    if not m:
        return None
    name = m.group(1)
    before = s[: m.start()]
    if "=" in before or name in KEYWORDS or "operator" in before.split():
        return None
    return name


def parse_header(path, model):
    text = strip_code(path.read_text())
    stack = []
    stmt = ""
    i = 0
    n = len(text)

    def ns_path():
        return namespace_names(stack)

    def in_weft_public_ns():
        names = ns_path()
        return names[:1] == ["weft"] and "detail" not in names and all(
            s.kind == "namespace" for s in stack)

    def current_class():
        return stack[-1] if stack and stack[-1].kind == "class" else None

    def qualified(name):
        return "::".join(ns_path() + [s.name for s in stack if s.kind == "class"] + [name])

    while i < n:
        c = text[i]
        if c == "{":
            head = stmt.strip()
            m_ns = re.match(r"^(?:inline\s+)?namespace\s+([\w:]+)\s*$", head)
            m_cls = re.search(
                r"(?:^|[\s>])(class|struct|union)\s+(\w+)\s*(?:final\s*)?(?::\s*(.*))?$", head,
                re.S)
            if m_ns:
                # One scope for `namespace a::b {`: its single `}` closes both names.
                stack.append(Scope("namespace", m_ns.group(1)))
            elif m_cls and "(" not in head.split(m_cls.group(2))[0]:
                kind, name, bases = m_cls.group(1), m_cls.group(2), m_cls.group(3) or ""
                public_bases = []
                for b in split_top(bases):
                    b = b.strip()
                    is_public = b.startswith("public") or (kind == "struct" and not re.match(
                        r"(private|protected)\b", b))
                    b = re.sub(r"^(public|private|protected)\s+", "", b)
                    b = re.sub(r"<.*", "", b, flags=re.S).strip()
                    public_bases.append((b, is_public))
                outer = current_class()
                public = (in_weft_public_ns() and outer is None) or False
                q = qualified(name)
                model.classes.setdefault(q, {"public": public, "members": set(), "bases": [],
                                             "types": set(), "short": name})
                model.classes[q]["bases"] = public_bases
                if outer is not None and outer.access == "public":
                    model.classes[qualified_outer(stack)]["types"].add(name)
                stack.append(Scope("class", name, "public" if kind != "class" else "private"))
            else:
                record(head, stack, model, in_weft_public_ns(), current_class(), qualified)
                stack.append(Scope("block"))
            stmt = ""
            i += 1
        elif c == "}":
            if stack:
                stack.pop()
            stmt = ""
            i += 1
        elif c == ";":
            record(stmt.strip(), stack, model, in_weft_public_ns(), current_class(), qualified)
            stmt = ""
            i += 1
        elif c == ":" and current_class() is not None and re.fullmatch(
                r"\s*(public|private|protected)\s*", stmt):
            current_class().access = stmt.strip()
            stmt = ""
            i += 1
        else:
            # Skip parenthesized parts whole (lambdas and braces inside parameter lists).
            if c == "(":
                depth = 0
                j = i
                while j < n:
                    depth += (text[j] == "(") - (text[j] == ")")
                    if depth == 0:
                        break
                    j += 1
                stmt += text[i:j + 1]
                i = j + 1
                continue
            stmt += c
            i += 1


def namespace_names(stack):
    """The namespace path of a scope stack, `namespace a::b` counted as two names."""
    return [part for s in stack if s.kind == "namespace" for part in s.name.split("::")]


def qualified_outer(stack):
    names = namespace_names(stack)
    names += [s.name for s in stack if s.kind == "class"]
    return "::".join(names)


def split_top(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += (ch == "<") - (ch == ">")
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def record(stmt, stack, model, weft_ns, cls, qualified):
    if not stmt or (stack and stack[-1].kind == "block"):
        return
    if cls is not None:
        if cls.access != "public":
            return
        q = qualified_outer(stack)
        m = re.match(r"^using\s+([\w:<>, ]+)::(\w+)$", stmt)
        if m:
            model.classes[q]["members"].add(m.group(2))
            return
        m = re.match(r"^using\s+(\w+)\s*=", stmt)
        if m:
            model.classes[q]["types"].add(m.group(1))
            return
        if stmt.startswith(("friend", "static_assert")):
            return
        name = statement_name(stmt)
        if name and name not in (cls.name, "~" + cls.name):
            model.classes[q]["members"].add(name)
        return
    if not weft_ns:
        return
    m = re.search(r"\b(?:inline\s+)?constexpr\s+[\w:<>]+\s+(\w+)\s*(?:\{|=|$)", stmt)
    if m:
        model.free.add(m.group(1))
        return
    m = re.match(r"^(class|struct)\s+(\w+)$", stmt)  # forward declaration
    if m:
        return
    m = re.match(r"^using\s+(\w+)\s*=", stmt)  # a type alias of namespace weft
    if m:
        model.free.add(m.group(1))
        return
    m = re.search(r"\bconcept\s+(\w+)\s*=", stmt)
    if m:
        model.free.add(m.group(1))
        return
    name = statement_name(stmt)
    if name:
        model.free.add(name)


def members_of(model, q, seen=None):
    seen = seen or set()
    if q in seen or q not in model.classes:
        return set()
    seen.add(q)
    info = model.classes[q]
    out = set(info["members"])
    ns = q.rsplit("::", 1)[0]
    for base, is_public in info["bases"]:
        if not is_public:
            continue
        for cand in (base, f"{ns}::{base}", f"weft::{base}"):
            if cand in model.classes:
                out |= members_of(model, cand, seen)
                break
    return out


def types_of(model, q):
    info = model.classes.get(q, {})
    out = set(info.get("types", ()))
    ns = q.rsplit("::", 1)[0]
    for base, is_public in info.get("bases", ()):
        for cand in (base, f"{ns}::{base}", f"weft::{base}"):
            if cand in model.classes:
                out |= types_of(model, cand)
                break
    return out


def load_model(root):
    model = Model()
    headers = sorted((root / "include" / "weft").glob("*.hpp")) + sorted(
        (root / "include" / "weft" / "detail").glob("*.hpp"))
    for h in headers:
        parse_header(h, model)
    for f in [root / "cmake" / "version.hpp.in"] + headers:
        if f.exists():
            model.macros |= set(re.findall(r"#define\s+(WEFT_[A-Z_]+)", f.read_text()))
    return model


def sections(doc):
    """[(heading chain text, body)] for each heading of the markdown."""
    out = []
    chain = []
    body = []
    in_fence = False
    for line in doc.split("\n"):
        if line.startswith("```"):
            in_fence = not in_fence
        m = None if in_fence else re.match(r"^(#{1,6})\s+(.*)$", line)
        if m:
            out.append((" / ".join(t for _, t in chain), "\n".join(body)))
            level = len(m.group(1))
            chain = [(lv, t) for lv, t in chain if lv < level] + [(level, m.group(2))]
            body = []
        else:
            body.append(line)
    out.append((" / ".join(t for _, t in chain), "\n".join(body)))
    return out


def check(root, doc):
    model = load_model(root)
    problems = []
    public = {q: i for q, i in model.classes.items() if i["public"]}
    short = {i["short"]: q for q, i in public.items()}
    if not public:
        problems.append("no public class found in include/weft/*.hpp (parser broken?)")

    # 1. classes, free functions, variables
    for name in sorted(set(short) | model.free):
        # weft::diagnostics::enable documents enable (nested namespaces are flattened)
        if not re.search(r"weft::(?:\w+::)*" + re.escape(name) + r"\b", doc):
            problems.append(f"not documented: weft::{name}")

    # 2. members, in the class's sections
    secs = sections(doc)
    for name, q in sorted(short.items()):
        members = members_of(model, q)
        if not members:
            continue  # the exception classes, biased_t: named in (1), nothing more to say
        text = "\n".join(b for h, b in secs if re.search(r"\b" + re.escape(name) + r"\b", h))
        if not text:
            problems.append(f"no section whose heading names {name}")
            continue
        for m in sorted(members):
            pat = r"(\b|\.|::)" + re.escape(m) + r"\s*\("
            if not re.search(pat, text) and not re.search(
                    re.escape(name) + r"::" + re.escape(m) + r"\b", doc):
                problems.append(f"not documented in the {name} section: {name}::{m}")

    # 3. what the doc names exists
    known = set(short) | model.free | {"weft", "asio"}  # weft::weft, weft::asio: CMake targets
    for used in sorted(set(re.findall(r"weft::(?:\w+::)*(\w+)", doc))):
        if used not in known and used != "detail":
            problems.append(f"docs/api.md names weft::{used}, which no public header declares")
    for cls, mem in sorted(set(re.findall(r"\b([A-Z]\w*)::(~?\w+)", doc))):
        if cls not in short:
            continue
        q = short[cls]
        if mem not in members_of(model, q) | types_of(model, q) | {cls}:
            problems.append(f"docs/api.md names {cls}::{mem}, which {cls} does not declare")
    for mac in sorted(set(re.findall(r"\bWEFT_[A-Z_]+\b", doc))):
        if mac not in model.macros and not mac.startswith("WEFT_PORTABLE_FUTEX"):
            problems.append(f"docs/api.md names {mac}, which no header defines")
    return problems, model


def self_test(root, doc, model):
    """The checker must fail on broken docs."""
    failures = []
    cls = sorted(i["short"] for i in model.classes.values() if i["public"])[0]
    cases = {
        f"weft::{cls} removed": re.sub(r"weft::" + cls + r"\b", "weft::", doc),
        "a name that does not exist": doc + "\n`weft::NoSuchThing`\n",
        "a member that does not exist": doc + "\n`Event::no_such_member()`\n",
        "a member left out": doc.replace("notify_all", "notify_every"),
    }
    for what, broken in cases.items():
        problems, _ = check(root, broken)
        if not problems:
            failures.append(f"self-test: the check passed on docs with {what}")
    # `namespace weft::detail { ... }` closes with one brace: what follows is not in weft.
    with tempfile.TemporaryDirectory() as tmp:
        header = Path(tmp) / "nested.hpp"
        header.write_text("namespace weft::detail {\nvoid hidden();\n}\nvoid global_fn();\n"
                          "namespace weft {\nvoid public_fn();\n}\n")
        nested = Model()
        parse_header(header, nested)
        if nested.free != {"public_fn"}:
            failures.append(f"self-test: nested namespaces parsed as {sorted(nested.free)}")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    root = Path(args.root)
    doc = (root / "docs" / "api.md").read_text()
    problems, model = check(root, doc)
    if args.self_test:
        problems += self_test(root, doc, model)
    public = sorted(i["short"] for i in model.classes.values() if i["public"])
    members = sum(len(members_of(model, q)) for q, i in model.classes.items() if i["public"])
    if problems:
        for p in problems:
            print(f"check_api_docs: {p}")
        print(f"check_api_docs: FAILED ({len(problems)} problem(s))")
        return 1
    print(f"check_api_docs: ok: {len(public)} classes ({', '.join(public)}), "
          f"{len(model.free)} free functions/variables, {members} member names")
    return 0


if __name__ == "__main__":
    sys.exit(main())

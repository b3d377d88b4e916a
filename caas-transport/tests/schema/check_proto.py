#!/usr/bin/env python3
"""Checks that proto/caas.v1.proto and the hand-written prost messages of
src/ws/proto.rs describe the same wire format: every message and field on both
sides, with the same field numbers, scalar types, optional/repeated labels,
oneof members and enum values. There is no protoc on a fresh machine, so this
stands in for generating the Rust code. Standard library only.

Usage: check_proto.py <caas.v1.proto> <proto.rs>; exit status 1 on a mismatch.
"""

import re
import sys

# The Rust names that differ from the .proto names (prost lets them differ; the
# wire only knows numbers), and the Rust oneof enums with their message.
ALIASES = {
    "ClientFrameMsg": "ClientFrame",
    "ServerFrameMsg": "ServerFrame",
    "AckMsg": "Ack",
    "AckResultMsg": "AckResult",
    "ErrorBodyMsg": "ErrorBody",
    "ErrorFrameMsg": "ErrorFrame",
    "EventMsg": "Event",
    "MessageMsg": "Message",
    "ConversationMsg": "Conversation",
    "MemberMsg": "Member",
    "UserMsg": "User",
}
ONEOFS = {"RequestMsg": "ClientFrame", "ServerFrameKind": "ServerFrame", "Payload": "Event"}
SCALARS = {"string", "uint64", "uint32", "bool"}


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def parse_proto(text):
    text = text.replace("{}", "{\n}")
    messages, enums = {}, {}
    for m in re.finditer(r"message (\w+) \{(.*?)\n\}", text, re.S):
        fields = {}
        for f in re.finditer(r"^\s*(optional |repeated )?([\w<>, .]+?) (\w+) = (\d+);", m.group(2), re.M):
            fields[f.group(3)] = (f.group(2).strip(), int(f.group(4)), (f.group(1) or "").strip())
        messages[m.group(1)] = fields
    for m in re.finditer(r"enum (\w+) \{(.*?)\n\}", text, re.S):
        enums[m.group(1)] = [int(x) for x in re.findall(r"= (\d+);", m.group(2))]
    return messages, enums


def parse_rust(text):
    text = text.replace("{}", "{\n}")
    items = {}
    for m in re.finditer(r"pub\(crate\) (?:struct|enum) (\w+) \{(.*?)\n\}", text, re.S):
        fields = {}
        for f in re.finditer(r"#\[prost\(([^)]*)\)\]\s*(?:pub\(crate\) )?(?:r#)?(\w+)", m.group(2), re.S):
            tag = re.search(r'tag = "(\d+)"', f.group(1))
            if tag:
                fields[f.group(2)] = (f.group(1), int(tag.group(1)))
        items[m.group(1)] = (fields, m.group(2))
    return items


def main(proto_path, rust_path):
    messages, enums = parse_proto(open(proto_path, encoding="utf-8").read())
    rust = parse_rust(open(rust_path, encoding="utf-8").read())
    problems, checked = [], 0
    covered = {name: set() for name in messages}
    for rname, (fields, body) in rust.items():
        if rname in ONEOFS:
            owner = messages[ONEOFS[rname]]
            for variant, (_, tag) in fields.items():
                checked += 1
                key = snake(variant)
                covered[ONEOFS[rname]].add(key)
                if key not in owner or owner[key][1] != tag:
                    problems.append(f"oneof {rname}::{variant} = {tag}, .proto has {owner.get(key)}")
            continue
        if rname in enums:
            values = [int(x) for x in re.findall(r"= (\d+),", body)]
            if values != enums[rname]:
                problems.append(f"enum {rname}: .proto {enums[rname]}, Rust {values}")
            continue
        pname = ALIASES.get(rname, rname)
        if pname not in messages:
            problems.append(f"Rust {rname} has no .proto message")
            continue
        proto_fields = messages[pname]
        for fname, (attrs, tag) in fields.items():
            if "oneof" in attrs:
                continue
            checked += 1
            covered[pname].add(fname)
            if fname not in proto_fields:
                problems.append(f"{pname}.{fname} is missing from the .proto")
                continue
            ptype, number, label = proto_fields[fname]
            kind = attrs.split(",")[0].strip()
            if number != tag:
                problems.append(f"{pname}.{fname}: .proto number {number}, Rust tag {tag}")
            if kind in SCALARS and kind != ptype:
                problems.append(f"{pname}.{fname}: .proto {ptype}, Rust {kind}")
            if "enumeration" in attrs and f'"{ptype}"' not in attrs:
                problems.append(f"{pname}.{fname}: .proto enum {ptype}, Rust {attrs}")
            if kind == "message" and ptype in SCALARS:
                problems.append(f"{pname}.{fname}: .proto {ptype}, Rust message")
            optional = "optional" in attrs and kind != "message"
            if optional != (label == "optional"):
                problems.append(f"{pname}.{fname}: optional differs")
            if ("repeated" in attrs) != (label == "repeated"):
                problems.append(f"{pname}.{fname}: repeated differs")
    for pname, fields in messages.items():
        for fname in fields:
            if fname not in covered[pname]:
                problems.append(f"{pname}.{fname} is missing from the Rust messages")
    for name in enums:
        if name not in rust:
            problems.append(f"enum {name} is missing from the Rust messages")
    for p in problems:
        print(p)
    print(f"{len(messages)} messages, {checked} fields, {len(enums)} enums, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

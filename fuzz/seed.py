#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ with real inputs: the repository's examples, policies, test
vectors and well-formed instances of each wire format. Run from anywhere; adds files only."""
import base64, hashlib, json, pathlib, struct

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def seed(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def b64(b):
    return base64.b64encode(b).decode()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def ed25519(seed_bytes):
    key = Ed25519PrivateKey.from_private_bytes(seed_bytes)
    return key, key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name, alg, pub):
    return hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + pub).digest()[:4]


def note_sig(key, name, alg, pub, text):
    return f"\u2014 {name} {b64(key_id(name, alg, pub) + key.sign(text.encode()))}\n"


# case JSON: the documented example and variants that exercise optional fields.
case = json.loads((ROOT / "docs/examples/case.json").read_text())
seed("case_json", "example", (ROOT / "docs/examples/case.json").read_bytes())
variant = dict(case, version=2, assessment={"findings": "所見", "plan": "計画", "progress": "経過"},
               safety_confirmed_at="2026-11-20T10:00:00+09:00", household="世帯", care_setting="在宅",
               upbringing="生育歴", welfare_services="福祉")
seed("case_json", "full", json.dumps(variant, ensure_ascii=False))
minimal = {k: v for k, v in case.items() if k not in ("guardians", "center_contact", "risk_level")}
seed("case_json", "minimal", json.dumps(minimal, ensure_ascii=False))

# batch CSV: control byte (bit 0: 0 UTF-8, 1 Shift_JIS; the rest: where the file is cut).
seed("batch_csv", "utf8", b"\x40" + (ROOT / "docs/examples/batch-utf8.csv").read_bytes())
seed("batch_csv", "sjis", b"\x41" + (ROOT / "docs/examples/batch-sjis.csv").read_bytes())
seed("batch_csv", "quotes", b'\x10a,"b ""c""",\r\n"d\re",f\rg\n')

# agreement and registry TOML.
for p in ["policies/agreements/kanagawa-2026.toml", "docs/examples/kanagawa-2026-v2.toml",
          "policies/registry.toml", "policies/consents.toml"]:
    seed("agreement_toml", pathlib.Path(p).stem, (ROOT / p).read_bytes())

# officer JWT: the fuzz target's fixture key is Ed25519 seed [7; 32].
jwt_key, _ = ed25519(bytes([7] * 32))
cert = b"the client certificate of the connection"
claims = {"iss": "https://idp.police.example", "sub": "K-1234", "aud": "cgc-gateway",
          "exp": 1_780_000_600, "nbf": 1_779_999_000, "iat": 1_779_999_000,
          "cnf": {"x5t#S256": b64url(hashlib.sha256(cert).digest())}}
payload = json.dumps(claims).encode()
signing_input = b64url(b'{"alg":"EdDSA","typ":"JWT"}') + "." + b64url(payload)
token = signing_input + "." + b64url(jwt_key.sign(signing_input.encode()))
seed("officer_jwt", "token", b"\x00" + token.encode())
seed("officer_jwt", "claims", b"\x01" + payload)
seed("officer_jwt", "claims-several-aud", b"\x01" + json.dumps(dict(claims, aud=["x", "cgc-gateway"])).encode())
seed("officer_jwt", "structured", b"\x02" + struct.pack(">qq", 1_780_000_600, 1_779_999_000) + "K-1234".encode())

# SSE cursors.
seed("sse_cursor", "cursor", "9f3a000000000001-1042")
seed("sse_cursor", "numbers", struct.pack(">QQ", 0x9F3A000000000001, 1042))
# The portable form: `<hex instance>-<seq>.<position>.<at_ms>.<hex epoch>`.
seed("sse_cursor", "portable", "9f3a000000000001-1042.5531.1764547200123.a1b2c3d4e5f60708")
seed("sse_cursor", "portable-extremes",
     "ffffffffffffffff-18446744073709551615.9223372036854775807.9223372036854775807.ffffffffffffffff")
seed("sse_cursor", "portable-zeros", "0-0.0.0.0")
seed("sse_cursor", "portable-padded", " 00ff-007.0001.1764547200000.00A ")
seed("sse_cursor", "portable-numbers",
     struct.pack(">QQQQQ", 0x9F3A000000000001, 1042, 5531 << 1, 1764547200123 << 1, 0xA1B2C3D4E5F60708))

# tile paths, a tile and an entry bundle.
seed("tile_path", "hashes", "0/x001/x234/067.p/8")
seed("tile_path", "entries", "entries/005")
seed("tile_path", "level", "63/x999/000")
seed("tile_path", "bundle", b"\x00\x03abc\x00\x00\x00\x01z")

# signed notes and checkpoints: the C2SP reference note and a log checkpoint.
vector = (ROOT / "tests/testvectors/signed-note.txt").read_text()
note = vector.split("-----BEGIN NOTE-----\n", 1)[1].split("-----END NOTE-----", 1)[0]
seed("signed_note", "reference", note)
verifier_key = vector.split("verifier-key: ", 1)[1].split("\n", 1)[0]
signer_key = vector.split("signer-key: ", 1)[1].split("\n", 1)[0]
seed("signed_note", "verifier-key", verifier_key)
seed("signed_note", "signer-key", signer_key)
log_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(signer_key.split("+", 4)[4])[1:])
log_pub = log_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
root = b64(hashlib.sha256(b"fuzz").digest())
checkpoint = f"cgc-gateway.example/audit\n1042\n{root}\n"
seed("signed_note", "checkpoint", checkpoint)
seed("signed_note", "checkpoint-ext", checkpoint + "extension line\n")
checkpoint_note = checkpoint + "\n" + note_sig(log_key, "PeterNeumann", 0x01, log_pub, checkpoint)
seed("signed_note", "checkpoint-note", checkpoint_note)

# cosignatures: the C2SP example line, the fuzz witness's key, notes with and without its cosignature.
seed("cosignature", "spec-line",
     "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==")
w_key, w_pub = ed25519(bytes([3] * 32))
w_name = "witness.example/w1"
seed("cosignature", "verifier-key", f"{w_name}+{key_id(w_name, 0x04, w_pub).hex()}+{b64(bytes([4]) + w_pub)}\n")
seed("cosignature", "note", checkpoint_note)
ts = 1_780_000_000
message = f"cosignature/v1\ntime {ts}\n{checkpoint}".encode()
cosig = f"\u2014 {w_name} {b64(key_id(w_name, 0x04, w_pub) + struct.pack('>Q', ts) + w_key.sign(message))}\n"
seed("cosignature", "cosigned-note", checkpoint_note + cosig)

# witness add-checkpoint requests.
proof = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
seed("witness_request", "first", "old 0\n\n" + checkpoint_note)
seed("witness_request", "proof", "old 1000\n" + "".join(b64(h) + "\n" for h in proof) + "\n" + checkpoint_note)

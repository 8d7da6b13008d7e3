"""Corpus for the PII scrubber: personal data it must remove, look-alikes it must keep.

``PII`` holds ``(type, value, template)``: ``type`` is the placeholder name the
scrubber should put in place of ``value`` (``[type]``), and ``template`` is a
realistic log line or message with ``{}`` where the value goes. Scrubbing
``template`` filled with ``value`` should give ``template`` filled with
``[type]``: the value is gone and the surrounding text is untouched.

``BENIGN`` holds strings that look like personal data to a careless detector
(UUIDs, versions, hashes, ids that fail the Luhn check, dates, durations, file
names, relative paths) and must come out of the scrubber byte for byte.

All values are fake: card numbers are the networks' published test numbers,
IBANs are the registry's examples or computed on made-up account numbers,
keys and tokens are random. Secret-looking literals are assembled from parts
(``"sk_" + "live_..."``) so that repository secret scanners do not flag this file.
"""

from __future__ import annotations

import base64
import hashlib
import json


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jwt(header: dict[str, str], claims: dict[str, object]) -> str:
    """A structurally valid JWT with a made-up signature."""
    head = _b64url(json.dumps(header, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    size = 64 if header["alg"].endswith("256") and header["alg"].startswith("E") else 32
    sig = _b64url(hashlib.sha512((head + body).encode()).digest()[:size])
    return f"{head}.{body}.{sig}"


def _pem(label: str, seed: str, lines: int, *, end: bool = True, newline: str = "\n") -> str:
    """A PEM block with a random (not a real key) base64 body of ``lines`` lines."""
    raw = b""
    block = seed.encode()
    while len(raw) < lines * 48:
        block = hashlib.sha512(block).digest()
        raw += block
    body = base64.b64encode(raw[: lines * 48]).decode("ascii")
    rows = [body[i : i + 64] for i in range(0, len(body), 64)]
    dashes = "-" * 5
    parts = [f"{dashes}BEGIN {label}{dashes}", *rows]
    if end:
        parts.append(f"{dashes}END {label}{dashes}")
    return newline.join(parts)


_PK = "PRIVATE " + "KEY"

PII: list[tuple[str, str, str]] = [
    # ---- private keys (PEM and armoured) --------------------------------------------
    ("private_key", _pem("RSA " + _PK, "rsa-1", 6), "loaded signing key from config:\n{}\n"),
    ("private_key", _pem(_PK, "pkcs8-1", 5), "TLS_KEY={}"),
    ("private_key", _pem("EC " + _PK, "ec-1", 2), "key material: {} (do not share)"),
    ("private_key", _pem("OPENSSH " + _PK, "ssh-1", 7), "contents of id_ed25519:\n{}\n"),
    ("private_key", _pem("ENCRYPTED " + _PK, "enc-1", 4), "encrypted key follows\n{}"),
    ("private_key", _pem("DSA " + _PK, "dsa-1", 3), "legacy key: {}"),
    (
        "private_key",
        _pem(_PK, "gcp-1", 5, newline="\\n"),
        '{"type": "service_account", "project_id": "demo", "private_key": "{}\\n"}',
    ),
    # A key cut off by a log line limit: everything from BEGIN on is removed.
    ("private_key", _pem("RSA " + _PK, "rsa-2", 3, end=False), "ValueError: bad key: {}"),
    ("private_key", _pem("PGP " + _PK + " BLOCK", "pgp-1", 4), "gpg export:\n{}\n"),
    # ---- credentials in URLs (the user:password part) -------------------------------
    ("credentials", "app_user:S3cr3t!", "connecting to postgres://{}@db.internal:5432/orders"),
    ("credentials", "admin:hunter2", "MONGO_URL mongodb+srv://{}@cluster0.ab1cd.mongodb.net/test"),
    ("credentials", ":authpass123", "cache at redis://{}@cache.internal:6379/0 unreachable"),
    ("credentials", "guest:guest", "amqp://{}@rabbitmq:5672/ connection refused"),
    ("credentials", "jdoe", "git clone https://{}@bitbucket.org/team/repo.git"),
    ("credentials", "deploy:Xk9-pq2_ZZ", "pushing to https://{}@git.example.com/org/app.git"),
    ("credentials", "mailer:Pa55w0rd", "SMTP relay smtp://{}@smtp.example.com:587 timed out"),
    ("credentials", "anonymous:guest%40example.com", "fetching ftp://{}@ftp.example.org/pub/x.tgz"),
    ("credentials", "svc-metrics:c2VjcmV0", "scrape target http://{}@metrics.local/metrics"),
    # ---- JSON web tokens ------------------------------------------------------------------
    *(
        ("jwt", token, template)
        for token, template in [
            (
                _jwt(
                    {"alg": "HS256", "typ": "JWT"},
                    {"sub": "1234567890", "name": "John Doe", "iat": 1516239022},
                ),
                "Authorization: Bearer {}",
            ),
            (
                _jwt(
                    {"alg": "RS256", "typ": "JWT", "kid": "k1"},
                    {"iss": "https://auth.example.com", "sub": "u_81", "exp": 1795000000},
                ),
                "id_token {} rejected: expired",
            ),
            (
                _jwt({"alg": "ES256"}, {"sub": "alice", "scope": "read write"}),
                "cookie session={}; Path=/; HttpOnly",
            ),
            (
                _jwt({"alg": "HS512", "typ": "JWT"}, {"user_id": 42, "role": "admin"}),
                "decoded token {} for request",
            ),
            (
                _jwt({"alg": "RS256"}, {"email": "jane@example.com", "aud": "quietly"}),
                '{"access_token": "{}", "expires_in": 3600}',
            ),
            (
                _jwt({"alg": "HS256"}, {"sid": "abc", "iat": 1700000000}),
                "GET /callback?jwt={}&state=xyz",
            ),
            (
                _jwt({"alg": "PS256", "typ": "at+jwt"}, {"client_id": "cli", "jti": "j-7"}),
                "verifying {}",
            ),
            (
                _jwt({"alg": "EdDSA"}, {"sub": "device-17", "nbf": 1700000000}),
                "JWT={}",
            ),
        ]
    ),
    # ---- authorization header tokens --------------------------------------------------
    ("token", "2YotnFZFEjr1zCsicMWpAA", "Authorization: Bearer {}"),
    ("token", "mF_9.B5f-4.1JqM", "sending request with header 'Authorization: Bearer {}'"),
    ("token", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Authorization: Basic {}"),
    ("token", "dXNlcjpwYXNzd29yZA==", "Proxy-Authorization: Basic {}"),
    (
        "token",
        "352cf8b36e4fe3af71f4c394b249252a4e4a24b8",
        "curl -H 'Authorization: token {}' https://api.example.com/user",
    ),
    ("token", "ya29.a0AfB_byC3kR9xQ2mLpZ7wT4vN8sE1hJ6uY0iO5dF", "retrying with bearer {}"),
    ("token", "jBKkVfWbS5rRR4EIZyG3xSTrFVBiHmk80znKQjIo", "oauth: got access token {} (1h)"),
    ("token", "gAAAAABl2x9kQ3v7Rz0pLmN8", "headers={'Authorization': 'Bearer {}'}"),
    # ---- API keys of well-known services ----------------------------------------------
    ("api_key", "sk_" + "live_3dmiVco1g9u8WHSNmgawKCqI", "stripe.api_key = {}"),
    ("api_key", "rk_" + "live_MpWdGAvEvlrEIWAG5mX2I7pR", "using restricted key {} for payouts"),
    ("api_key", "ghp_" + "TSqryMEtUOupQihqyqFpsG0JcmFTKp0gWeot", "GITHUB_TOKEN={}"),
    (
        "api_key",
        "github_pat_" + "ClIC3Z6nKvbQplEx4UTcTY_a4TY6bmgrYElj19neVHUv6cFAcEqofrb0V3iheIom73CQ89tD8",
        "gh auth login --with-token {}",
    ),
    ("api_key", "AKIA" + "1T3TNJYKMKQFXFCU", "AWS_ACCESS_KEY_ID={}"),
    ("api_key", "AKIA" + "IOSFODNN7EXAMPLE", "botocore: using access key {} from env"),
    (
        "api_key",
        "xoxb-" + "87072578914-3474697816949-PfLJvm6c4NObu5jO3aHriDLM",
        "slack: posting with {}",
    ),
    (
        "api_key",
        "xoxp-" + "96059212955-73741028690-2035242641700-0e66df1414846ab09895d1138476239d",
        "SLACK_USER_TOKEN: {}",
    ),
    ("api_key", "AIza" + "oE2V6FyF33vvuhfnqRa3hdO3Ee89hiTo_yT", "maps?key={}&q=Berlin"),
    ("api_key", "glpat-" + "5w3eI75wbKfE-42-gKH7", "git remote add ci {} (gitlab)"),
    (
        "api_key",
        "sk-" + "proj-VhJGPOhtxypCoYnubf9UVO5C9yFRdJC4lIvFOCCozi-WQGLY",
        "openai.OpenAI(api_key={})",
    ),
    (
        "api_key",
        "npm_" + "AbOsaHu3rmAZKHuxLUHPmx9gRSLONzZePoQK",
        "//registry.npmjs.org/:_authToken={}",
    ),
    # ---- secret assignments (key=value, key: value, JSON, env) ----------------------
    ("secret", "hunter2", "connect(host='db', password={}, timeout=5)"),
    ("secret", "Tr0ub4dor&3", '{"username": "svc", "password": "{}"}'),
    ("secret", "a1b2c3d4e5f6g7h8i9j0", "api_key: {}"),
    ("secret", "s3cr3t-P@ssw0rd", "DB_PASSWORD={}"),
    ("secret", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = {}"),
    ("secret", "9f8e7d6c5b4a39281706f5e4d3c2b1a0", "client_secret='{}'"),
    ("secret", "f3a9c2e1-7b64-4d2a-9c1e-5b8a7d6e4f30", "X-Api-Key: {}"),
    ("secret", "correct horse battery staple", "settings: password='{}' saved"),
    ("secret", "1//0gLx3hQ2bXyZ-L9IrA", "POST /token grant_type=refresh_token&refresh_token={}"),
    ("secret", "pg-Secret-77", "PGPASSWORD={} psql -h db"),
    ("secret", "Winter2026!", "mysqldump --user=root --password={} app"),
    ("secret", "qa-token-9921", "X-Auth-Token: {}"),
    # ---- e-mail addresses ---------------------------------------------------------------
    ("email", "jane.doe@example.com", "password reset link sent to {}"),
    ("email", "j.smith+billing@mail.example.co.uk", "From: {}"),
    ("email", "maria.garcia@gmail.com", "Reply-To: Maria <{}>"),
    ("email", "support@acme-corp.io", '<a href="mailto:{}">support</a>'),
    ("email", "sean.o'brien@example.ie", "user {} not found"),
    ("email", "ADMIN@EXAMPLE.ORG", "notify {} on failure"),
    ("email", "user_42@sub.mail.example.com", "duplicate key: email={}"),
    ("email", "k.tanaka@example.jp", '{"email":"{}","plan":"pro"}'),
    ("email", "first-last@xn--bcher-kva.example", "invite accepted by {}."),
    # ---- user names in home directories -----------------------------------------------
    ("user", "alice", "reading /home/{}/.config/quietly/config.toml"),
    (
        "user",
        "bob.smith",
        "FileNotFoundError: [Errno 2] No such file or directory: '/home/{}/data.csv'",
    ),
    ("user", "jdoe", "/Users/{}/Library/Application Support/Quietly/state.db is locked"),
    ("user", "mgarcia", r"log file C:\Users\{}\AppData\Local\Quietly\logs\app.log"),
    ("user", "John Smith", r"saved C:\Users\{}\Documents\report.docx"),
    ("user", "akumar", '"cwd": "C:\\\\Users\\\\{}\\\\source\\\\repos\\\\app"'),
    ("user", "lchen", "opened C:/Users/{}/Desktop/notes.txt"),
    (
        "user",
        "deploy",
        'File "/home/{}/venv/lib/python3.12/site-packages/requests/api.py", line 59, in get',
    ),
    ("user", "tkowalski", "toolbox: /var/home/{}/src/app"),
    ("user", "pwilson", "wsl: cd /mnt/c/Users/{}/Downloads"),
    ("user", "maria", "cwd is /home/{}"),
    # ---- IBANs (valid check digits; compact and grouped) ------------------------------
    ("iban", "DE89370400440532013000", "refund to IBAN {} requested"),
    ("iban", "GB29 NWBK 6016 1331 9268 19", "payee account: {}"),
    ("iban", "FR1420041010050500013M02606", "iban={}"),
    ("iban", "NL91ABNA0417164300", "SEPA mandate for {} created"),
    ("iban", "ES91 2100 0418 4502 0005 1332", "transfer to ES account {} failed"),
    ("iban", "IT60X0542811101000000123456", "conto {} bloccato"),
    ("iban", "BE68 5390 0754 7034", "IBAN {} BIC GKCCBEBB"),
    ("iban", "CH93 0076 2011 6238 5295 7", "Konto: {}"),
    ("iban", "AT61 1904 3002 3457 3201", "payout {} EUR 120.00"),
    ("iban", "PL61109010140000071219812874", "rachunek {}"),
    ("iban", "NO9386011117947", "konto {} ok"),
    ("iban", "IE29 AIBK 9311 5212 3456 78", "direct debit from {}"),
    ("iban", "DE44500105175407324931", "Lastschrift von {} abgelehnt"),
    # ---- payment card numbers (pass Luhn) ----------------------------------------------
    ("credit_card", "4111 1111 1111 1111", "charge failed for card {} (insufficient funds)"),
    ("credit_card", "4012-8888-8888-1881", "card_number={}"),
    ("credit_card", "4539578763621486", "payment with {} exp 12/28"),
    ("credit_card", "5555 5555 5555 4444", "Mastercard {} declined"),
    ("credit_card", "5105-1051-0510-5100", "card: {}"),
    ("credit_card", "2223003122003222", '{"pan": "{}"}'),
    ("credit_card", "3782 822463 10005", "Amex {} added"),
    ("credit_card", "371449635398431", "amex={}"),
    ("credit_card", "6011 1111 1111 1117", "Discover card {} on file"),
    ("credit_card", "6011000990139424", "tokenizing {}"),
    # Next to other numbers: found by the property tests (test_scrub_properties.py).
    ("credit_card", "4242 4242 4242 4242", "order 18 paid with {} 2 times"),
    # ---- national identifiers (checked by python-stdnum; NINO by its prefix rules) ----
    ("national_id", "AB 12 34 56 C", "National Insurance number {} on file"),
    ("national_id", "JG103741A", "nino={}"),
    ("national_id", "56 014 339 276", "Steuer-ID: {}"),
    ("national_id", "61703584258", "Steueridentifikationsnummer {} ungültig"),
    ("national_id", "1 72 02 32 013 121 26", "NIR {} introuvable"),
    ("national_id", "297086005766807", "numéro de sécurité sociale {}"),
    ("national_id", "214035797", "BSN {} niet gevonden"),
    ("national_id", "X6982340T", "NIE {} caducado"),
    ("national_id", "16225575H", "DNI: {}"),
    ("national_id", "RSSMRA85T10A562S", "codice fiscale {} non valido"),
    ("national_id", "856.198.137-70", "CPF {} inválido"),
    # ---- US social security numbers -----------------------------------------------------
    ("ssn", "078-05-1120", "SSN: {}"),
    ("ssn", "219-09-9999", "ssn={}"),
    ("ssn", "457-55-5462", "applicant {} verified"),
    ("ssn", "536-22-1234", "W-2 for {} generated"),
    ("ssn", "123-45-6789", '{"ssn": "{}"}'),
    ("ssn", "372-81-4490", "taxpayer id {}."),
    ("ssn", "601-23-4455", "SSN {} does not match"),
    ("ssn", "089-12-3456", "(ssn {})"),
    # ---- MAC addresses -----------------------------------------------------------------
    ("mac", "00:1A:2B:3C:4D:5E", "wlan0: link up, HWaddr {}"),
    ("mac", "00-1A-2B-3C-4D-5E", "Physical Address. . . . . . . . . : {}"),
    ("mac", "a4:83:e7:12:34:56", "ether {}  txqueuelen 1000"),
    ("mac", "f0:18:98:ab:cd:ef", "device {} joined"),
    ("mac", "3C-22-FB-9A-10-7B", "adapter MAC={}"),
    ("mac", "dc:a6:32:01:23:45", "DHCPACK to 10 ({})"),
    ("mac", "08:00:27:4e:66:a1", "mac_address: {}"),
    ("mac", "B8-27-EB-12-AB-CD", "Ethernet {} detected"),
    # ---- IP addresses (v4 and v6) ------------------------------------------------------
    ("ip", "203.0.113.42", "Accepted publickey for git from {} port 52344 ssh2"),
    ("ip", "198.51.100.23", "X-Forwarded-For: {}"),
    ("ip", "10.0.12.7", "connect to {}:5432 failed"),
    ("ip", "192.168.1.101", "client={} user_agent=curl/8.4.0"),
    ("ip", "8.8.8.8", "DNS server {}."),
    ("ip", "2001:db8::1", "listening on [{}]:8443"),
    ("ip", "fe80::1ff:fe23:4567:890a%eth0", "inet6 {} prefixlen 64 scopeid 0x20<link>"),
    ("ip", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "peer {} closed the connection"),
    ("ip", "::1", "GET /health from {}"),
    ("ip", "::ffff:192.0.2.128", "remote_addr={}"),
    ("ip", "2a00:1450:4001:82b::200e", "resolved to {}"),
    # ---- phone numbers (international and national formats) -------------------------
    ("phone", "+44 20 7946 0958", "call back on {}"),
    ("phone", "+44 7700 900123", "SMS to {} failed"),
    ("phone", "020 7946 0958", "Tel: {}"),
    ("phone", "07700 900123", "mobile {}"),
    ("phone", "+49 30 901820", "Rückruf unter {}"),
    ("phone", "+49 (0)151 23456789", "Handy: {}"),
    ("phone", "030 12345678", "Telefon {}"),
    ("phone", "(555) 123-4567", "customer phone {}"),
    ("phone", "+1 (555) 010-9999", "contact {} for access"),
    ("phone", "555-867-5309", "call {}"),
    ("phone", "+1-202-555-0143", "phone={}"),
    ("phone", "+33 1 42 68 53 00", "standard: {}"),
    ("phone", "+31 6 12345678", "WhatsApp {}"),
    ("phone", "555.234.5678", "fax {}"),
    ("phone", "1-800-555-0199", "toll-free {} (24/7)"),
    ("phone", "+14155552671", "twilio: delivered to {}"),
    ("phone", "+44 (0)20 7946 0958", "Office {}"),
]

BENIGN: list[str] = [
    # UUIDs
    "550e8400-e29b-41d4-a716-446655440000",
    "event_id=6F9619FF-8B86-D011-B42D-00C04FC964FF",
    "{0b6f3c1e-2a44-4f0e-9d6b-8a1e2f3c4d5e}",
    "install 12345678-1234-5678-1234-567812345678 registered",
    "00000000-0000-0000-0000-000000000000",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    # versions
    "v2.14.0",
    "1.2.3-beta.4+exp.sha.5114f85",
    "1.0.0+20130313144700",
    "Windows 10.0.19045.2846",
    "10.0.22631.3447",
    "Chrome/120.0.6099.109",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.109 Safari/537.36",
    "Python 3.11.9",
    "node v20.11.1",
    "OpenSSL 3.0.13 30 Jan 2024",
    "Linux 5.15.0-91-generic x86_64",
    "macOS 14.4.1 (23E224)",
    "app_version=2026.11.3",
    "Android 14 (API 34)",
    "quietly-sdk 0.1.0.dev3",
    "python:3.12-slim",
    # hashes and hex
    "commit e83c5163316f89bfbde7d9ab23ca2e25604af290",
    "fixed in 3f2a9c1",
    "sha256:f6d50232a7dd71b7572f9927358e09c11e0b1fca6c856c70b2ce6a7b363ef172",
    "md5 d41d8cd98f00b204e9800998ecf8427e",
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    "SHA1 fingerprint 5E:FF:56:A2:AF:15:88:25:F5:E8:2E:35:1B:F3:AB:2D:12:45:F8:C2",
    "pointer 0x7ffe4c2a1b30",
    "HRESULT 0x80070005: Access is denied",
    "color #1a2b3c",
    # long numeric ids that fail the Luhn check
    "order 123456789012345",
    "id=987654321098765",
    "100000000000001",
    "4111111111111112",
    "account ref 1234567890123456",
    "4111 1111 1111 1112",
    "snowflake 1176543210987654321",
    "ts_ms=1763900000000",
    "ns=1763900000000000000",
    "ISBN 978-3-16-148410-0",
    "tracking 1Z999AA10123456784",
    "DE123456789",
    "GB00 NWBK 6016 1331 9268 19",
    "batch 1234567890123452 (Luhn-valid, not a card range)",
    # invalid social security numbers (never issued)
    "000-12-3456",
    "666-12-3456",
    # dates and times
    "2026-11-23",
    "23/11/2026",
    "11/23/2026",
    "2026-11-23T12:30:45Z",
    "2026-11-23T12:30:45.123+01:00",
    "2026-11-23 12:30:45,123 INFO started",
    "Mon, 23 Nov 2026 12:30:45 GMT",
    "12:30:45",
    "23.11.2026",
    # durations and sizes
    "1234ms",
    "took 1.5s",
    "elapsed 00:01:23",
    "00:01:23.456",
    "2h 15m",
    "took 0.004321 s",
    "RSS 512 MiB, heap 1.25 GiB",
    "rate limit: 1000 req/min",
    # file names and relative paths
    "main.py",
    "report-2026-11.csv",
    "IMG_20261123_123045.jpg",
    "backup-2026-11-23.tar.gz",
    "libssl.so.3",
    "app-1.2.3-x86_64.AppImage",
    "data_000123456789012.parquet",
    "~/Documents/notes.txt",
    "/usr/local/lib/python3.12/site-packages/msgspec/__init__.py",
    "/var/log/nginx/access.log",
    "/tmp/tmpa1b2c3/data.json",
    r"C:\Program Files\Quietly\quietly.exe",
    r"C:\Users\Public\Documents\readme.txt",
    "/Users/Shared/Quietly/cache.db",
    "https://docs.example.com/home/getting-started",
    r"C:\Users\Default\AppData\Local\Temp",
    # ordinary numbers
    "42",
    "3.14159",
    "-273.15",
    "1,234,567",
    "$1,299.99",
    "6.022e23",
    "52.5200, 13.4050",
    "retries=3 of 5",
    # hosts, ports and HTTP
    "localhost:8080",
    "listening on :8443",
    "HTTP/1.1 200 OK",
    "GET /api/v1/users/42 HTTP/2 404",
    "POST /v2/events 413 Payload Too Large",
    # stack frames and code
    'File "app/main.py", line 42, in run',
    "at com.example.App.main(App.java:17)",
    "at Object.<anonymous> (src/index.js:10:15)",
    "thread 'main' panicked at src/main.rs:12:5",
    "std::collections::HashMap",
    "items[1:2:3]",
    "    return items[::-1]",
    "every_other = values[::2]",
    "aspect ratio 16:9",
    "a::before { content: '' }",
    # words that name secrets without carrying one
    "Token refresh succeeded after 2 retries",
    "token validation failed: signature mismatch",
    "Using basic authentication for proxy",
    "bearer token missing",
    "token_count=1234",
    "max_tokens: 2048",
    "password_min_length=12",
    "secret_santa_enabled=false",
    "test pass: 42 of 50",
    "api key rotated",
    '{"token_type": "Bearer", "expires_in": 3600}',
    "Bearer authentication required",
    "passwordless=true",
    "access_key_id rotated on 2026-11-01",
    # web paths that are not home directories
    "GET /home HTTP/1.1 200",
    "https://api.example.com/Users/42/profile",
]

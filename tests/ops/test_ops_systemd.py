"""ops/systemd/kms.service: every hardening setting stays in, systemd itself accepts the unit and rates its exposure,
and kms really runs inside the two sandbox parts that could break it: the unit's system-call allow list
(SystemCallFilter=@system-service ~@privileged, rebuilt here with libseccomp) and MemoryDenyWriteExecute (the
kernel's own W^X lock, PR_SET_MDWE). Those run where the host allows them and skip with a reason elsewhere."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from backends.env import EnvProvider
from kms.errors import ProviderError

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "ops" / "systemd" / "kms.service"
ENV_FILE = REPO / "ops" / "systemd" / "kms.env"
INSTALLED_KMS = "/opt/kms/bin/kms"
MAX_EXPOSURE = 2.0  # systemd-analyze security's scale: 0 (locked down) to 10 (exposed); "OK" starts below 2

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Sections of key -> every value given (systemd units may repeat a key); comments and blank lines dropped."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = unit.setdefault(line.strip("[]"), {})
            continue
        assert section is not None, f"setting outside a section: {line}"
        key, _, value = line.partition("=")
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "PrivateIPC": "yes",
    "PrivateMounts": "yes",
    "PrivateUsers": "yes",
    "ProtectProc": "invisible",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RemoveIPC": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "SystemCallArchitectures": "native",
    "SystemCallErrorNumber": "EPERM",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "LimitCORE": "0",
    "UMask": "0077",
    "DynamicUser": "yes",
    "StateDirectory": "kms",
    "StateDirectoryMode": "0700",
    "LogsDirectory": "kms",
    "LogsDirectoryMode": "0700",
}


@pytest.mark.parametrize(("key", "value"), sorted(HARDENING.items()))
def test_hardening_setting_is_in_force(service: dict[str, list[str]], key: str, value: str) -> None:
    assert service.get(key) == [value], f"{key}= must be exactly '{value}' (once), found {service.get(key)}"


def test_system_call_filter(service: dict[str, list[str]]) -> None:
    assert service["SystemCallFilter"] == ["@system-service", "~@privileged"]


def test_password_arrives_as_a_credential_for_the_env_backend(service: dict[str, list[str]]) -> None:
    (exec_start,) = service["ExecStart"]
    argv = exec_start.split()
    assert argv[:2] == [INSTALLED_KMS, "daemon"]
    pairs = dict(zip(argv[2::2], argv[3::2], strict=False))
    assert pairs["--backend"] == "env"
    assert pairs["--path"] == "%S/kms/wallet.dat"  # inside StateDirectory=kms
    assert pairs["--audit-log"] == "%L/kms/audit.log"  # inside LogsDirectory=kms
    assert pairs["--metrics-address"] == "127.0.0.1"
    assert pairs["--log-format"] == "json"
    assert not {"--apiKey", "--api-key"} & set(argv)
    assert "kms-password:/etc/kms/password" in service["LoadCredential"]
    assert "TATUM_KMS_PASSWORD_FILE=%d/kms-password" in service["Environment"]
    assert not any(value.startswith(("TATUM_KMS_PASSWORD=", "TATUM_API_KEY=")) for value in service["Environment"])
    assert service["EnvironmentFile"] == ["/etc/kms/kms.env", "/etc/kms/secrets.env"]


def test_environment_file_holds_every_variable_execstart_uses_and_no_secret(service: dict[str, list[str]]) -> None:
    settings = {}
    for line in ENV_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            settings[key] = value
    used = set(re.findall(r"\$\{?([A-Z_]+)\}?", service["ExecStart"][0]))
    assert used == {"KMS_CHAIN", "KMS_PERIOD", "KMS_EXTERNAL_URL", "KMS_EXTRA_ARGS"}
    assert used <= set(settings)
    assert not {key for key in settings if re.search(r"PASSWORD|API_KEY|TOKEN|SECRET|HMAC", key)}
    assert settings["KMS_EXTERNAL_URL"].startswith("https://")


def test_env_backend_accepts_a_systemd_credential_and_refuses_a_world_readable_file(tmp_path: Path) -> None:
    # systemd hands credentials over as mode 0400 files owned by the service user; that must pass the env backend's
    # ownership check, and a file that others can read must not.
    credential = tmp_path / "kms-password"
    credential.write_bytes(b"a long enough store password\n")
    credential.chmod(stat.S_IRUSR)
    with EnvProvider({"TATUM_KMS_PASSWORD_FILE": str(credential)}).fetch() as password:
        assert password.bytes() == b"a long enough store password"
    credential.chmod(stat.S_IRUSR | stat.S_IROTH)
    with pytest.raises(ProviderError):
        EnvProvider({"TATUM_KMS_PASSWORD_FILE": str(credential)}).fetch()


# ------------------------------------------------------------------------------------------- systemd-analyze ---


def _systemd_analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    return tool


def _unit_copy(tmp_path: Path) -> Path:
    # verify checks that ExecStart's program exists: point it at this checkout's kms (or, failing that, Python).
    kms = Path(sys.executable).parent / "kms"
    program = kms if kms.exists() else Path(sys.executable)
    copy = tmp_path / "kms.service"
    copy.write_text(UNIT.read_text().replace(INSTALLED_KMS, str(program)))
    return copy


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    unit = _unit_copy(tmp_path)
    run = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    # Unknown or misspelt settings are only warnings ("Unknown key ..., ignoring"): any line about our unit fails.
    complaints = [line for line in run.stderr.splitlines() if "kms.service" in line]
    assert not complaints, "\n".join(complaints)


def test_systemd_analyze_verify_notices_a_misspelt_setting(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    unit = _unit_copy(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomes=yes"))
    run = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120, check=False)
    assert "ProtectHomes" in run.stderr


def test_systemd_rates_the_unit_ok_or_better(tmp_path: Path) -> None:
    tool = _systemd_analyze()
    unit = _unit_copy(tmp_path)
    run = subprocess.run(
        [tool, "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = re.search(r"Overall exposure level for kms\.service: (\d+\.\d)", run.stdout + run.stderr)
    if match is None:
        pytest.skip(f"this systemd-analyze has no offline security report: {run.stderr.strip()[:200]}")
    print(f"systemd-analyze security: exposure {match.group(1)}")
    assert float(match.group(1)) <= MAX_EXPOSURE, run.stdout


# ------------------------------------------------------------------------------------------- the sandbox, live ---

# Runs in a child: optionally loads a seccomp allow list (one syscall name a line, in the file argv[1]) and the
# kernel's W^X lock, then becomes the command after "--". Exit 77: the host cannot set up that part of the sandbox.
_LAUNCHER = r"""
import ctypes, ctypes.util, mmap, os, sys
allow_file, mdwe, command = sys.argv[1], sys.argv[2] == "1", sys.argv[4:]
libc = ctypes.CDLL(None, use_errno=True)
if mdwe:
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(77)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit(78)  # not enforced after all
    except PermissionError:
        pass
if allow_file != "-":
    lib = ctypes.CDLL(ctypes.util.find_library("seccomp") or "libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(0x00050001)  # SCMP_ACT_ERRNO(EPERM), as SystemCallErrorNumber=EPERM
    for name in open(allow_file).read().split():
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number >= 0 and lib.seccomp_rule_add(ctx, 0x7FFF0000, number, 0) != 0:
            sys.exit(77)
    if lib.seccomp_load(ctx) != 0:
        sys.exit(77)
os.execv(command[0], command)
"""


def _expand(group: str, tool: str, seen: set[str] | None = None) -> set[str]:
    """The system calls in a systemd-analyze syscall-filter group, nested groups included."""
    seen = set() if seen is None else seen
    seen.add(group)
    out = subprocess.run([tool, "syscall-filter", group], capture_output=True, text=True, timeout=60, check=True)
    names: set[str] = set()
    for line in out.stdout.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.startswith("@"):
            if entry not in seen:
                names |= _expand(entry, tool, seen)
        else:
            names.add(entry)
    return names


@pytest.fixture(scope="module")
def unit_syscall_allow_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tool = _systemd_analyze()
    if ctypes.util.find_library("seccomp") is None:
        pytest.skip("libseccomp is not installed (Debian: libseccomp2)")
    allowed = _expand("@system-service", tool) - _expand("@privileged", tool)
    assert {"mlock", "prctl", "setrlimit", "getrandom"} <= allowed  # what kms.hygiene and the crypto rely on
    assert not {"ptrace", "mount", "setuid", "bpf"} & allowed
    path = tmp_path_factory.mktemp("seccomp") / "allow.txt"
    path.write_text("\n".join(sorted(allowed)))
    return path


def _run_sandboxed(
    command: list[str], allow_list: Path | None, mdwe: bool, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", _LAUNCHER, str(allow_list or "-"), "1" if mdwe else "0", "--", *command]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)


_NATIVE_CODE_PATHS = r"""
import ctypes, json
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
import coincurve, nacl.signing
from kms.hygiene import SecretBuffer, harden_process
report = harden_process()
with SecretBuffer(b"k" * 32) as secret:
    locked = secret.locked
key = hash_secret_raw(
    b"password", b"saltsaltsaltsalt", time_cost=1, memory_cost=65536, parallelism=4, hash_len=32, type=Type.ID
)
AESGCM(key).decrypt(b"n" * 12, AESGCM(key).encrypt(b"n" * 12, b"data", None), None)
coincurve.PrivateKey().sign_recoverable(b"m" * 32, hasher=None)
nacl.signing.SigningKey.generate().sign(b"message")
callback = ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)()
print(json.dumps({"report": report.as_dict(), "locked": locked, "callback": callback}))
"""


def test_kms_native_code_runs_under_write_xor_execute() -> None:
    run = _run_sandboxed([sys.executable, "-c", _NATIVE_CODE_PATHS], None, True, dict(os.environ))
    if run.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+) or the sandbox forbids it")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["callback"] == 7
    assert result["report"]["coreDumpsDisabled"] is True


def test_kms_cli_runs_inside_the_units_syscall_filter_and_write_xor_execute(
    unit_syscall_allow_list: Path, tmp_path: Path
) -> None:
    password = tmp_path / "kms-password"
    password.write_bytes(b"a long enough store password\n")
    password.chmod(stat.S_IRUSR)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "TATUM_KMS_PASSWORD_FILE": str(password),
        "KMS_INSECURE_TEST_KDF": "1",
    }

    def kms(store: Path, *args: str, sandboxed: bool) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "kms", *args, "--backend", "env", "--path", str(store)]
        allow = unit_syscall_allow_list if sandboxed else None
        return _run_sandboxed(command, allow, sandboxed, env)

    baseline = kms(tmp_path / "baseline.dat", "generatemanagedwallet", "ETH", sandboxed=False)
    if baseline.returncode != 0:
        pytest.skip(f"kms generatemanagedwallet fails outside the sandbox too: {baseline.stderr.strip()[-200:]}")
    created = kms(tmp_path / "sandboxed.dat", "generatemanagedwallet", "ETH", sandboxed=True)
    if created.returncode == 77:
        pytest.skip("this host cannot load a seccomp filter or set PR_SET_MDWE")
    assert created.returncode == 0, created.stderr
    signature_id = json.loads(created.stdout)["signatureId"]
    address = kms(tmp_path / "sandboxed.dat", "getaddress", signature_id, "0", sandboxed=True)
    assert address.returncode == 0, address.stderr
    assert json.loads(address.stdout)["address"].startswith("0x")


def test_the_rebuilt_filter_really_blocks_what_the_unit_forbids(unit_syscall_allow_list: Path) -> None:
    # The control for the test above: setuid (in @privileged) must fail with EPERM inside, and work outside.
    probe = "import os, sys\ntry:\n    os.setuid(os.getuid())\nexcept PermissionError:\n    sys.exit(3)"
    outside = _run_sandboxed([sys.executable, "-c", probe], None, False, dict(os.environ))
    assert outside.returncode == 0, outside.stderr
    inside = _run_sandboxed([sys.executable, "-c", probe], unit_syscall_allow_list, False, dict(os.environ))
    if inside.returncode == 77:
        pytest.skip("this host cannot load a seccomp filter")
    assert inside.returncode == 3, inside.stderr

"""The `kms` command line: upstream tatum-kms's commands and flags, plus kms's own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kms import __version__
from kms.cli import output
from kms.cli.command_types import Handler
from kms.errors import KmsError
from kms.hygiene import harden_process
from kms.passwords import PASSWORD_RULE

DESCRIPTION = """\
kms: a hardened key-management daemon for the Tatum API.

Wallets (mnemonics and private keys) live encrypted in one local store file (AES-256-GCM under a key derived from
your password with Argon2id). Apps use each wallet's signatureId with the Tatum API instead of the secret; the daemon
signs pending transactions locally. Secrets are never taken from the command line: passwords come from a no-echo
prompt or a password backend, mnemonics and keys from a no-echo prompt or standard input.
"""

EPILOG = """\
Password backends (--backend): prompt (default; or TATUM_KMS_PASSWORD when set), env (TATUM_KMS_PASSWORD or
TATUM_KMS_PASSWORD_FILE), vgs, azure, aws, vault. Settings come from the environment and from --envFile
(default ~/.tatumrc/.env). Run 'kms COMMAND --help' for a command's arguments.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag or argument is one JSON error line on stderr like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # A subcommand's parser is named "kms COMMAND": point at that command's own help.
        output.error(f"{message} (see '{self.prog} --help')")
        raise SystemExit(2)


def _common_flags() -> argparse.ArgumentParser:
    """Flags accepted before or after any command, in upstream's camelCase and in kebab-case."""
    common = _Parser(add_help=False)
    s = argparse.SUPPRESS
    common.add_argument(
        "--testnet", action="store_true", default=s, help="use the chain's testnet (mainnet by default)"
    )
    common.add_argument("--path", default=s, metavar="FILE", help="wallet store file (default ~/.tatumrc/wallet.dat)")
    common.add_argument(
        "--store",
        default=s,
        metavar="URL",
        help="wallet store URL: postgresql://HOST/DB for a store shared by several daemons, or sqlite:///PATH"
        " (default: TATUM_KMS_STORE_URL, else --path)",
    )
    common.add_argument(
        "--create-dirs",
        "--createDirs",
        dest="create_dirs",
        action="store_true",
        default=s,
        help="a new store may create the missing directories of --path (~/.tatumrc is always created)",
    )
    common.add_argument(
        "--envFile",
        "--env-file",
        dest="envFile",
        default=s,
        metavar="FILE",
        help="file of KEY=VALUE settings (default ~/.tatumrc/.env, loaded when present)",
    )
    common.add_argument(
        "--apiKey",
        "--api-key",
        dest="apiKey",
        default=s,
        metavar="KEY",
        help="Tatum API key (daemon mode); prefer TATUM_API_KEY in the env file",
    )
    common.add_argument(
        "--backend", default=s, metavar="NAME", help="password backend: prompt, env, vgs, azure, aws, vault"
    )
    common.add_argument("--vgs", action="store_true", default=s, help="password from VGS (same as --backend vgs)")
    common.add_argument(
        "--azure", action="store_true", default=s, help="password from Azure Key Vault (same as --backend azure)"
    )
    common.add_argument(
        "--aws", action="store_true", default=s, help="password from AWS Secrets Manager (same as --backend aws)"
    )
    return common  # fmt: skip


def _lazy(module: str, name: str) -> Handler:
    def run(args: argparse.Namespace) -> int:
        import importlib

        handler: Handler = getattr(importlib.import_module(module), name)
        return handler(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    common = _common_flags()
    parser = _Parser(
        prog="kms",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"kms {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help_text: str, handler: Handler) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(handler=handler)
        return p

    wallets = "kms.cli.wallet_commands"
    chain_help = "chain code, e.g. ETH, BTC (case-insensitive)"

    p = command(
        "generatewallet",
        "Generate a wallet for CHAIN and print it (secrets included); nothing is stored.",
        _lazy(wallets, "generatewallet"),
    )
    p.add_argument("chain", metavar="CHAIN", help=chain_help)
    p = command(
        "generatemanagedwallet",
        "Generate a wallet for CHAIN, store it, print its signatureId and xpub/address.",
        _lazy(wallets, "generatemanagedwallet"),
    )
    p.add_argument("chain", metavar="CHAIN", help=chain_help)
    p = command(
        "storemanagedwallet",
        "Store an existing mnemonic for CHAIN (read with no echo, or from standard input; BIP39 checksum verified).",
        _lazy(wallets, "storemanagedwallet"),
    )
    p.add_argument("chain", metavar="CHAIN", help=chain_help)
    p = command(
        "storemanagedprivatekey",
        "Store an existing private key for CHAIN (read with no echo, or from standard input; validated for the chain).",
        _lazy(wallets, "storemanagedprivatekey"),
    )
    p.add_argument("chain", metavar="CHAIN", help=chain_help)
    p = command(
        "generatemanagedprivatekeybatch",
        "Generate and store COUNT private keys for CHAIN in one transaction; prints one "
        '{"signatureId","address"} line per key.',
        _lazy(wallets, "generatemanagedprivatekeybatch"),
    )
    p.add_argument("chain", metavar="CHAIN", help=chain_help)
    p.add_argument("count", metavar="COUNT", help="number of keys (1 to 25000)")
    p = command(
        "getmanagedwallet",
        "Print the stored wallet (secrets included) for SIGNATURE_ID.",
        _lazy(wallets, "getmanagedwallet"),
    )
    p.add_argument("signatureId", metavar="SIGNATURE_ID")
    p = command("removewallet", "Remove the wallet SIGNATURE_ID from the store.", _lazy(wallets, "removewallet"))
    p.add_argument("signatureId", metavar="SIGNATURE_ID")
    p = command(
        "getprivatekey",
        "Print the private key of wallet SIGNATURE_ID at derivation INDEX.",
        _lazy(wallets, "getprivatekey"),
    )
    p.add_argument("signatureId", metavar="SIGNATURE_ID")
    p.add_argument("index", metavar="INDEX", help="0 to 2147483647")
    p = command(
        "getaddress", "Print the address of wallet SIGNATURE_ID at derivation INDEX.", _lazy(wallets, "getaddress")
    )
    p.add_argument("signatureId", metavar="SIGNATURE_ID")
    p.add_argument("index", metavar="INDEX", help="0 to 2147483647")
    command("export", "Print every stored wallet (secrets included) as upstream's JSON.", _lazy(wallets, "export"))
    p = command(
        "checkconfig",
        "Show the configuration in force as JSON: the store (type, path), the password backend and its settings, "
        "the other settings, the process hardening. Only secrets are masked.",
        _lazy("kms.cli.checkconfig", "checkconfig"),
    )
    p.add_argument("--table", action="store_true", help="upstream's text table instead of JSON")
    p = command(
        "report", "Report on wallets (type, chain, testnet, warnings) and the system.", _lazy(wallets, "report")
    )
    p.add_argument("signatureIds", metavar="ID[,ID...]", nargs="?", default="")
    command(
        "passwd",
        "Change the store password (the data key is re-wrapped atomically; the old password stops working). The "
        "current password comes from the chosen backend. The new one needs " + PASSWORD_RULE + "; at a terminal it "
        "is asked twice with no echo, without a terminal it is the first line of standard input "
        "(e.g. kms passwd < new-password-file).",
        _lazy(wallets, "passwd"),
    )
    p = command(
        "migrate",
        "Import an upstream tatum-kms wallet.dat into the kms store (the old file is only read).",
        _lazy("kms.cli.migrate_command", "migrate"),
    )
    p.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="OLD_WALLET_DAT",
        help="the upstream wallet.dat to import (its password comes from the chosen backend)",
    )
    from kms.cli.audit_commands import register as register_audit_commands

    register_audit_commands(command)
    from kms.cli.journal_commands import register as register_journal_commands

    register_journal_commands(command)
    from kms.cli.store_commands import register as register_store_commands

    register_store_commands(command)
    from kms.cli.policy_commands import register as register_policy_commands

    register_policy_commands(command)
    from kms.cli.daemon_commands import register as register_daemon_commands

    register_daemon_commands(command)
    return parser  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = getattr(args, "command", None)
        parser.prog = f"kms {command}" if command else "kms"  # the help that lists this command's flags
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    # Before any command can touch a secret: no core dumps, not dumpable.
    harden_process()
    if getattr(args, "apiKey", None):
        output.warn("--apiKey shows the API key to every user of this machine (process list); prefer TATUM_API_KEY")
    try:
        return handler(args)
    except KmsError as exc:
        output.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        output.error(f"internal error ({type(exc).__name__}); nothing was written")
        return 70


if __name__ == "__main__":
    sys.exit(main())

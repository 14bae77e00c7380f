"""Added latency per transaction of approval protocol v2 against upstream's four-eye check (v1), both against a local
approver that answers after 50 ms, plus what v2 costs without the network (intent decoding, signing the request,
verifying the answer).

Run: .venv/bin/python bench/approval.py [--count N] [--latency SECONDS] [--algorithm ES256|EdDSA]
Both modes ask sequentially over a kept-alive connection; "added" is v2's median minus v1's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kms.api import PendingTransaction
from kms.approval.approver import Approver, ApproverConfig
from kms.approval.decoders import decode_intent
from kms.approval.intent import payload_digest
from kms.approval.keys import generate_signing_key
from kms.approval.protocol import sign_answer, sign_request, verify_answer, verify_request
from kms.approval.v2 import ApprovalV2
from kms.daemon.four_eye import FourEye

ETH_TX = '{"to":"0x22d44d45fb79e5cdfbd2881cc3992a5ac53d2c4d","value":"1000","gasPrice":"20000000000","gas":"21000",'
ETH_TX += '"nonce":7,"chainId":11155111}'
PENDING = PendingTransaction(id="bench-1", chain="ETH", serialized_transaction=ETH_TX, hashes=("wallet",))


class _FourEyeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    latency = 0.05

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.latency)
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def timings(call: Callable[[], object], count: int) -> list[float]:
    call()  # connection set up, libraries warm
    out = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


def offline_costs(algorithm: str, count: int) -> dict[str, dict[str, float]]:
    daemon, approver = generate_signing_key(algorithm), generate_signing_key(algorithm)
    intent = decode_intent(PENDING, True)
    digest = payload_digest(b"bench")

    def round_trip() -> None:
        request = sign_request(
            daemon, request_id="r", pending_id="p", chain="ETH", payload_sha256=digest, intent=intent.as_json(), ttl=30
        )
        claims = verify_request(request.token, daemon.public)
        verify_answer(sign_answer(approver, claims, "approve"), approver.public, request)

    return {
        "decode_intent": summary(timings(lambda: decode_intent(PENDING, True), count)),
        "sign_request_verify_answer_both_sides": summary(timings(round_trip, count)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--algorithm", choices=("ES256", "EdDSA"), default="ES256")
    args = parser.parse_args()

    _FourEyeHandler.latency = args.latency
    v1_server = ThreadingHTTPServer(("127.0.0.1", 0), _FourEyeHandler)
    Thread(target=v1_server.serve_forever, daemon=True).start()
    four_eye = FourEye(f"http://127.0.0.1:{v1_server.server_address[1]}/approval")
    v1 = timings(lambda: four_eye.check(PENDING), args.count)
    four_eye.close()
    v1_server.shutdown()

    daemon_key = generate_signing_key(args.algorithm)
    config = ApproverConfig(
        key=generate_signing_key(args.algorithm), daemon_key=daemon_key.public, latency=args.latency
    )
    with Approver(config) as approver, ApprovalV2(approver.url, daemon_key, approver.public_key) as v2_client:
        digest = payload_digest(b"signed bytes")

        def v2_check() -> None:
            decision = v2_client.check(PENDING, decode_intent(PENDING, True), digest)
            if not decision.approved:
                raise SystemExit(f"v2 did not approve: {decision.reason}")

        v2 = timings(v2_check, args.count)

    v1_summary, v2_summary = summary(v1), summary(v2)
    report = {
        "approver_latency_ms": args.latency * 1000,
        "count": args.count,
        "algorithm": args.algorithm,
        "v1_four_eye": v1_summary,
        "v2_signed_with_intent": v2_summary,
        "added_per_transaction_ms": round(v2_summary["median_ms"] - v1_summary["median_ms"], 2),
        "v2_offline": offline_costs(args.algorithm, args.count),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""``kms sandbox --help``: how to point a daemon at the sandbox, and the admin API's bodies.

Kept apart from kms/sandbox so that building the CLI's parser does not import the sandbox's server and HTTP client.
The shapes are checked in kms/sandbox/admin_api.py; a test keeps the two in step.
"""

SANDBOX_EPILOG = """\
Prints one JSON line: {"url", "approvalUrl", "admin", "hint"}; "hint" is a daemon command line that works as given
(the sandbox accepts any API key unless started with --apiKey, then only that one).

Admin API (JSON bodies; a bad body is refused with 400 and {"message": "bad request: <reason>"}, changing nothing):

  POST /_sandbox/pending   one pending transaction, or a list of them, as Tatum's API returns them:
      {"id": "p1",                                   required, non-empty string
       "chain": "ETH",                               required, chain code (case-insensitive)
       "serializedTransaction": "{\\"to\\": ...}",      required, non-empty string (JSON text for most chains)
       "hashes": ["<signatureId>"],                  wallets that sign: "hashes" (key wallets) and/or
       "signatures": [{"id": "<signatureId>", "index": 0}],   (mnemonic wallets at an index); at least one
       "index": 0, "withdrawalId": "...", "withdrawalResponses": [...]}   optional, passed through
    Answer: {"ids": ["p1", ...]}. Nothing is queued when any entry is refused.
    POST /_sandbox/pending?unchecked=1 queues entries as given (only "chain" is needed; a missing "id" is made
    up), to see what a daemon does with malformed pending transactions.

  POST /_sandbox/config    any of these keys (others are refused):
      "latency": 0.05                        seconds added to every Tatum API answer
      "faults": [{"kind": "status", "status": 503, "times": 2}]
                                             kind: status | reset | malformed | wrongshape | delay | trickle;
                                             also path (prefix, default /v3/), method, signatureId, retryAfter,
                                             seconds (delay; trickle: between bytes), times (default 1; -1 = always)
      "approval": {"default": "approve", "ids": {"p1": "deny"}, "hang": 30}
                                             verdicts: approve | deny | notfound | error | timeout
      "fee": {"slow": "...", "medium": "...", "fast": "..."}   wei, as strings
      "chainIds": {"ethereum": 11155111}, "estimateGas": 21000, "nonces": {"0xaddress": 3}
      "nodeNonces": true                     count like a node: nonces + the accepted EVM broadcasts after it
      "nonceStep": 1                         added to an address's nonce after every look-up of it (chaos runs)
      "latestVersion": "9.9.9" or null, "apiKey": "key" or null
      "solana": {"blockhash": "...", "lastValidBlockHeight": 2000, "blockHeight": 1850, "confirm": true}
                                             the SOL node at /v3/blockchain/node/SOL/{apiKey}: verifies the
                                             signatures of what is sent; confirm false = never confirmed
    Answer: {"ok": true}.

  GET /_sandbox/state      what was polled, broadcast, reported and approved; the queue; the faults
  POST /_sandbox/reset     back to the start: queue, records and settings (the API key stays)
"""

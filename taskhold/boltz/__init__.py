"""The Boltz API v2 client the employer's and worker's clients use (issue #14), and their
durable swap records. taskhold's server never calls Boltz: the keys and preimage of a swap stay
with the party whose swap it is.

| module | job |
|---|---|
| ``errors`` | Boltz refused, Boltz unreachable, Boltz answered nonsense; bad swap records |
| ``statuses`` | the status strings of the submarine and reverse lifecycles, and which end a swap |
| ``fields`` | typed, range-checked reading of Boltz's JSON; what a swap id may be |
| ``models`` | the wire shapes: strict ``from_json`` for answers, ``to_json`` for requests |
| ``api`` | ``BoltzApi``: the REST calls, every failure mapped to ``errors`` |
| ``ws`` | swap status over the WebSocket (resubscribes once), and a polling fallback |
| ``verify`` | rebuild the swap tree from our own facts and refuse an answer that differs |
| ``records`` | one fsync'd 0600 JSON file per swap, written before any funds move |
"""

"""The reference a pass is compared to: a bare httpx client making the same requests.

Run as its own process, like the CLI it is compared with:
`python _bare_client.py URL [--concurrency 8] [--lists-only] [--import-db]`.

It pages through both list endpoints side by side (from=0, 100, ... up to the first empty
page, as a sweep does) and then, unless `--lists-only`, views every listed campaign with
`--concurrency` requests in flight. `--import-db` also imports SQLAlchemy and psycopg (the
unchanged pass's reference: what any Python sync must at least load). Prints the number
of requests made. No retries, no parsing beyond `json()`: the least any client can do.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import httpx

KEY, REST_KEY = "KEY", "SECRET"
SEGMENTS = ("campaigns", "in-app-campaigns")


async def sweep(client: httpx.AsyncClient, segment: str) -> list[str]:
    tokens: list[str] = []
    offset = 0
    while True:
        params = {"from": offset, "limit": 100}
        response = await client.get(f"/1.1/{KEY}/{segment}/list", params=params)
        page = response.json()
        if not page:
            return tokens
        tokens += [entry["campaign_token"] for entry in page]
        offset += len(page)


async def main(url: str, concurrency: int, lists_only: bool) -> int:
    async with httpx.AsyncClient(base_url=url, headers={"X-Authorization": REST_KEY}) as client:
        swept = await asyncio.gather(*(sweep(client, segment) for segment in SEGMENTS))
        requests = sum(len(tokens) // 100 + 1 for tokens in swept)  # full pages + the empty one
        if lists_only:
            return requests
        gate = asyncio.Semaphore(concurrency)

        async def view(segment: str, token: str) -> None:
            async with gate:
                (await client.get(f"/1.1/{KEY}/{segment}/{token}")).json()

        pairs = zip(SEGMENTS, swept, strict=True)
        await asyncio.gather(*(view(segment, t) for segment, tokens in pairs for t in tokens))
        return requests + sum(len(tokens) for tokens in swept)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lists-only", action="store_true")
    parser.add_argument("--import-db", action="store_true")
    args = parser.parse_args()
    if args.import_db:
        import psycopg  # noqa: F401
        import sqlalchemy  # noqa: F401
    print(asyncio.run(main(args.url, args.concurrency, args.lists_only)))
    sys.exit(0)

"""Top gainers ELT: scrape CoinMarketCap's top gainers, convert USD to a target currency, load a CSV to S3.

Modules import each other absolutely (``from gainers_elt.x import y``) so the package works when its
directory is dropped into any working directory (Prefect's ``pull_from_s3`` step) and loaded from the
entrypoint ``gainers_elt/flow.py:top_gainers_elt``.
"""

__version__ = "1.0.0"

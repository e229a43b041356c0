"""Model prices (pure): the table that turns counted tokens into money, exactly.

Money is counted in integer pico-dollars (10^-12 USD) so that sums in Redis (HINCRBY) and in
Python are exact: a price of at most 6 decimals per million tokens times a whole number of tokens
is a whole number of pico-dollars. ``usd`` renders an amount as a decimal string, never a float.
The shipped table (orchestrator/prices.yaml) holds examples with their date; MEOWSTIK_PRICES_FILE
replaces it. A model that is not in the table has no price: its cost is None, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from orchestrator.core.chat import Usage
from orchestrator.core.errors import ConfigurationError

PICO_PER_USD = 10**12
PICO_PER_TOKEN_PER_USD_PER_MILLION = PICO_PER_USD // 10**6  # one token at $1/M is 10^6 pico-$
MAX_PRICE_DECIMALS = 6


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens, in pico-dollars per token (exact integers)."""

    input_pico_per_token: int
    output_pico_per_token: int

    def cost_pico(self, usage: Usage) -> int:
        return (
            usage.prompt_tokens * self.input_pico_per_token
            + usage.completion_tokens * self.output_pico_per_token
        )


@dataclass(frozen=True)
class PriceTable:
    prices: dict[str, ModelPrice]
    as_of: str | None = None
    source: str = "built-in examples"

    def price(self, *models: str | None) -> ModelPrice | None:
        """The price of the first of ``models`` the table lists (requested, then served)."""
        for model in models:
            if model and model in self.prices:
                return self.prices[model]
        return None

    def cost_pico(self, usage: Usage | None, *models: str | None) -> int | None:
        """The cost of ``usage`` in pico-dollars; None when the tokens or the price are unknown."""
        price = self.price(*models)
        if usage is None or price is None:
            return None
        return price.cost_pico(usage)


def usd(pico: int | None) -> str | None:
    """An amount of pico-dollars as a decimal string of dollars (``"0.000123"``), exact."""
    if pico is None:
        return None
    amount = Decimal(pico) / PICO_PER_USD
    text = format(amount.normalize(), "f")
    return text if "." not in text else text.rstrip("0").rstrip(".") or "0"


def pico_of_usd(value: Any, where: str) -> int:
    """Dollars (a number or a decimal string) in pico-dollars; ConfigurationError when it is not
    a non-negative amount with at most 12 decimals."""
    return _exact(value, PICO_PER_USD, where, "an amount of dollars", "at most 12 decimals")


def parse_prices(document: Any, source: str) -> PriceTable:
    """The table in a prices file's document. Raises ConfigurationError naming the bad entry."""
    if not isinstance(document, dict) or not isinstance(document.get("models"), dict):
        raise ConfigurationError(
            f"prices file {source}: expected a mapping with 'models: {{name: {{input: ..., "
            "output: ...}}}}' (USD per million tokens)"
        )
    prices = {}
    for name, entry in document["models"].items():
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise ConfigurationError(
                f"prices file {source}: model {name!r} needs exactly 'input' and 'output' "
                "(USD per million tokens)"
            )
        prices[str(name)] = ModelPrice(
            _per_token(entry["input"], f"{source}: {name}.input"),
            _per_token(entry["output"], f"{source}: {name}.output"),
        )
    as_of = document.get("asOf")
    return PriceTable(prices, str(as_of) if as_of is not None else None, source)


def load_prices(path: Path | None = None) -> PriceTable:
    """The table in ``path`` (MEOWSTIK_PRICES_FILE), else the shipped examples."""
    if path is None:
        text = resources.files("orchestrator").joinpath("prices.yaml").read_text("utf-8")
        return parse_prices(yaml.safe_load(text), "built-in examples (orchestrator/prices.yaml)")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(f"MEOWSTIK_PRICES_FILE {path}: cannot be read ({exc})") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"MEOWSTIK_PRICES_FILE {path}: not YAML ({exc})") from exc
    return parse_prices(document, str(path))


def _per_token(value: Any, where: str) -> int:
    """USD per million tokens as pico-dollars per token."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigurationError(f"{where}: {value!r} is not a price in USD per million tokens")
    return _exact(
        value,
        PICO_PER_TOKEN_PER_USD_PER_MILLION,
        where,
        "a number",
        f"at most {MAX_PRICE_DECIMALS} decimals (USD per million tokens)",
    )


def _exact(value: Any, scale: int, where: str, what: str, precision: str) -> int:
    """``value`` (its decimal text) times ``scale`` as an exact whole number; ConfigurationError
    saying ``what`` it must be, or that it must be non-negative with ``precision``."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ConfigurationError(f"{where}: {value!r} is not {what}") from exc
    scaled = amount * scale
    if not amount.is_finite() or amount < 0 or scaled != scaled.to_integral_value():
        raise ConfigurationError(f"{where}: {value!r} must be non-negative with {precision}")
    return int(scaled)

"""RxNorm products and brand names, resolved to the ingredients the rules are written for.

Rules name a drug by its RxNorm ingredient; EHRs order products ("clopidogrel 75 MG Oral
Tablet", "... [Plavix]", packs, combinations) and sometimes send only text ("Plavix 75 mg").
Two sources say which ingredients a product holds, in the same shape:

* the curated table shipped with the rules (``rules/products/*.yaml``), each row citing its source;
* the index the learning loop builds from the site's OMOP vocabulary and publishes beside the
  strengths (``products.json``), which the service hot-reloads.

A product maps to every ingredient it holds: a combination triggers each ingredient's rules.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.decision.rules import RXNORM_CODE
from engine.documents.yamlsource import Problem, YamlDocument
from engine.runtime.published import read_published

Ingredients = tuple[str, ...]
RxNormCode = Annotated[str, Field(pattern=RXNORM_CODE)]


def name_key(text: str) -> str:
    """A drug or brand name as the matcher compares it: lower-case words, punctuation dropped."""
    return " ".join(re.findall(r"[a-z0-9]+", text.casefold()))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Product(_Strict):
    """An RxNorm product (clinical or branded drug, pack, brand name concept) and its ingredients."""

    rxcui: str = Field(pattern=RXNORM_CODE)
    name: str = Field(min_length=1)
    ingredients: tuple[RxNormCode, ...] = Field(min_length=1, description="RxNorm ingredient codes")
    source: str = Field(default="", description="Where the row comes from (curated rows: a key of `sources`)")


class Brand(_Strict):
    """A brand name, as it appears in order text, and the ingredients its products hold."""

    name: str = Field(min_length=1)
    ingredients: tuple[RxNormCode, ...] = Field(min_length=1)
    rxcui: str | None = Field(default=None, pattern=RXNORM_CODE, description="The RxNorm Brand Name concept")
    source: str = ""


class ProductIndex(_Strict):
    """Products and brands of the drugs the rules cover: the published file, or one curated file."""

    version: str = ""
    created: str = ""
    source: str = ""
    products: tuple[Product, ...] = ()
    brands: tuple[Brand, ...] = ()

    def with_version(self) -> ProductIndex:
        """This index stamped with a digest of its content: the same content, the same version."""
        body = self.model_copy(update={"version": "", "created": ""}).model_dump_json().encode()
        return self.model_copy(update={"version": hashlib.sha256(body).hexdigest()[:12]})


EMPTY = ProductIndex()


class CuratedTable(_Strict):
    """A curated products file: its sources, then product and brand rows each naming one of them."""

    sources: dict[str, str] = Field(min_length=1)
    products: tuple[Product, ...] = ()
    brands: tuple[Brand, ...] = ()


def parse_curated(document: YamlDocument, covered: Iterable[str] | None) -> tuple[ProductIndex, list[Problem]]:
    """The rows of a curated products file, and its problems as ``file:line: message``.

    ``covered`` are the ingredient codes the rules watch: a row none of whose ingredients is
    one of them could never raise a card, which is almost always a mistyped code (None: not checked).
    """
    try:
        table = CuratedTable.model_validate(document.data)
    except ValidationError as exc:
        return EMPTY, document.validation_problems(exc)
    problems = []
    for section, rows in (("products", table.products), ("brands", table.brands)):
        for number, row in enumerate(rows):
            if row.source not in table.sources:
                known = ", ".join(sorted(table.sources))
                message = f"source {row.source!r} is not one of the file's sources ({known})"
                problems.append(document.problem((section, number, "source"), message))
            if covered is not None and not any(code in covered for code in row.ingredients):
                message = f"{row.name}: none of its ingredients ({', '.join(row.ingredients)}) is a drug a rule covers"
                problems.append(document.problem((section, number, "ingredients"), message))
    index = ProductIndex(source=document.name, products=table.products, brands=table.brands)
    return index, problems


def read_product_index(path: Path) -> ProductIndex:
    """The published index in ``path``; EMPTY when nothing was published there yet.

    Raises ``OSError`` or ``pydantic.ValidationError`` for a file that cannot be read or is not an index.
    """
    return read_published(path, ProductIndex, EMPTY)


def ingredient_tables(indexes: Iterable[ProductIndex]) -> tuple[dict[str, Ingredients], dict[str, Ingredients]]:
    """(product code -> ingredient codes, brand name key -> ingredient codes) over all ``indexes``.

    A code or brand listed more than once holds the union of what each row says.
    """
    by_code: dict[str, dict[str, None]] = {}
    by_name: dict[str, dict[str, None]] = {}
    for index in indexes:
        for product in index.products:
            by_code.setdefault(product.rxcui, {}).update(dict.fromkeys(product.ingredients))
        for brand in index.brands:
            by_name.setdefault(name_key(brand.name), {}).update(dict.fromkeys(brand.ingredients))
            if brand.rxcui:
                by_code.setdefault(brand.rxcui, {}).update(dict.fromkeys(brand.ingredients))
    return _frozen(by_code), _frozen(by_name)


def _frozen(table: Mapping[str, dict[str, None]]) -> dict[str, Ingredients]:
    return {key: tuple(values) for key, values in table.items()}

"""The product index built from the site's OMOP vocabulary, published beside the strengths.

Every RxNorm product of an ingredient descends from it in ``concept_ancestor`` (clinical and
branded drugs, their forms and components, packs). The query below is plain SQL over the OMOP
vocabulary tables, with no engine-specific function, so it runs where the vocabulary lives
(DuckDB here; PostgreSQL or Spark as well). Brand names come from the branded products'
RxNorm names, which end in the brand in brackets ("... Oral Tablet [Plavix]").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from analytics.data.store import table_exists
from engine.decision.products import Brand, Product, ProductIndex, read_product_index
from engine.rulebook.library import Library
from engine.runtime.published import replace_atomically

log = logging.getLogger(__name__)
VOCABULARY = ("concept", "concept_ancestor")
SOURCE = "OMOP vocabulary (concept, concept_ancestor)"
BRANDED = ("Branded Drug", "Branded Drug Form", "Branded Drug Comp", "Quant Branded Drug", "Branded Pack",
           "Branded Dose Group")  # fmt: skip
BRACKETED = re.compile(r"\[([^\[\]]+)\]\s*$")

PRODUCTS_SQL = """
SELECT product.concept_code AS rxcui, product.concept_name AS name, product.concept_class_id AS concept_class,
       ingredient.concept_code AS ingredient
FROM concept ingredient
JOIN concept_ancestor ancestry ON ancestry.ancestor_concept_id = ingredient.concept_id
JOIN concept product ON product.concept_id = ancestry.descendant_concept_id
WHERE ingredient.vocabulary_id = 'RxNorm' AND ingredient.concept_class_id = 'Ingredient'
  AND ingredient.concept_code IN ({ingredients})
  AND product.vocabulary_id = 'RxNorm' AND product.concept_id <> ingredient.concept_id
ORDER BY product.concept_code, ingredient.concept_code
"""


def products_sql(ingredients: list[str]) -> str:
    """The query for the products of ``ingredients`` (RxNorm codes, digits only: safe to inline)."""
    if not ingredients or not all(code.isdigit() for code in ingredients):
        raise ValueError("ingredient codes must be RxNorm codes (digits)")
    return PRODUCTS_SQL.format(ingredients=", ".join(f"'{code}'" for code in sorted(set(ingredients))))


def covered_ingredients(library: Library) -> list[str]:
    """Every RxNorm code the rule files name: ingredients first in each drug, but products cost nothing here."""
    return sorted({code for rule in library.rules for drug in rule.drugs for code in drug.rxnorm})


def has_vocabulary(con: duckdb.DuckDBPyConnection) -> bool:
    return all(table_exists(con, table) for table in VOCABULARY)


def build_index(con: duckdb.DuckDBPyConnection, library: Library) -> ProductIndex:
    """The products and brands of the drugs ``library`` covers, from the vocabulary in ``con``."""
    return index_from_rows(con.execute(products_sql(covered_ingredients(library))).fetchall())


def index_from_rows(rows: Iterable[tuple[str, str, str, str]]) -> ProductIndex:
    """The index from the rows of ``products_sql`` (rxcui, name, concept class, ingredient), from any engine."""
    products: dict[str, tuple[str, dict[str, None]]] = {}
    brands: dict[str, dict[str, None]] = {}
    for rxcui, name, concept_class, ingredient in rows:
        products.setdefault(str(rxcui), (name, {}))[1][str(ingredient)] = None
        bracketed = BRACKETED.search(name or "") if concept_class in BRANDED else None
        if bracketed:
            brands.setdefault(bracketed.group(1).strip(), {})[str(ingredient)] = None
    index = ProductIndex(
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        source=SOURCE,
        products=tuple(
            Product(rxcui=rxcui, name=name, ingredients=tuple(ingredients), source=SOURCE)
            for rxcui, (name, ingredients) in sorted(products.items())
        ),
        brands=tuple(
            Brand(name=name, ingredients=tuple(ingredients), source=SOURCE)
            for name, ingredients in sorted(brands.items())
        ),
    )
    return index.with_version()


def publish(index: ProductIndex, path: Path) -> bool:
    """Write ``index`` to ``path`` atomically unless the file already holds the same content.

    Returns whether it was written. An unreadable existing file is replaced.
    """
    try:
        if read_product_index(path).version == index.version:
            return False
    except (OSError, ValueError):
        pass  # a damaged file: the new one replaces it
    replace_atomically(path, index.model_dump_json(indent=1).encode())
    log.info("published %d products and %d brand names to %s", len(index.products), len(index.brands), path)
    return True

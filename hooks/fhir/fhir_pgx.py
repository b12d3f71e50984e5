"""FHIR Observations -> reported PGx results, read as tolerantly as real servers require.

Recognised (see ../shared/reference/fhir-pgx.md):
- Genotype: ``code`` LOINC 84413-4; gene in component 48018-6 (HGNC id or symbol), diplotype in
  ``valueCodeableConcept`` (text, display or code, e.g. "CYP2C19 *1/*2") or ``valueString``.
- Therapeutic implication: ``code`` tbd-codes-cs#therapeutic-implication, phenotype in the
  component ``therapeutic-implication``, ``predicted-therapeutic-implication`` or LOINC 53040-2.
- STU1 medication-metabolism: ``code`` LOINC 53040-2 with the phenotype as the value.
An implication's gene comes from a gene-studied component, else from the genotype it is derived
from, else from the drug it assesses when exactly one of our genes has a rule for that drug.

Only final results about the request's patient are used; everything else is skipped and logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from typing import Any

from engine.decision.lookup import RuleLookup
from engine.decision.orders import RXNORM_SYSTEM
from engine.decision.rules import Drug
from engine.genotype.genes import GeneDefinition
from engine.genotype.results import ReportedResult
from hooks.fhir.fhir_shapes import Observation, Unread, conforms, shape_problems
from hooks.fhir.prefetch import PrefetchInvalid
from hooks.protocol.fhir_servers import BaseUrl, UnusableUrl
from hooks.protocol.requests import is_urn_uuid

log = logging.getLogger(__name__)
DOUBT = object()  # a field the strict triage cannot read as R4 types it
TEXTS_KEPT = 4096  # value texts whose leading gene a reader remembers (bounded: the texts come from requests)

LOINC = "http://loinc.org"
GENOMICS_TBD = "http://hl7.org/fhir/uv/genomics-reporting/CodeSystem/tbd-codes-cs"
GENOTYPE = (LOINC, "84413-4")
GENE_STUDIED_CODE = (LOINC, "48018-6")
GENE_STUDIED = frozenset({GENE_STUDIED_CODE})
MEDICATION_ASSESSED = frozenset({(LOINC, "51963-7")})
METABOLISM_EFFECT = (LOINC, "53040-2")
METABOLISM_EFFECTS = frozenset({METABOLISM_EFFECT})
# Observation.code -> what kind of PGx result the Observation is.
KINDS = {
    GENOTYPE: "genotype",
    (GENOMICS_TBD, "therapeutic-implication"): "implication",
    METABOLISM_EFFECT: "implication",
}
PHENOTYPE_COMPONENTS = frozenset(
    {
        (GENOMICS_TBD, "therapeutic-implication"),
        (GENOMICS_TBD, "predicted-therapeutic-implication"),
        METABOLISM_EFFECT,
    }
)
USABLE_STATUS = {"final", "amended", "corrected"}
OBSERVATION = "Observation/"
# What the triage of an Observation finds: (kind of PGx result or None, whether it names its gene, which of our genes).
Triage = tuple[str | None, bool, str | None]
# Triages found ahead of ``read`` in one request, by ``id`` of the Observation. The Observation itself is
# kept beside its triage: it stays alive, so its id cannot be reused by another, and ``read`` checks it is
# the same object before trusting what was found.
Triaged = dict[int, tuple[dict[str, Any], str | None, bool, str | None]]

# Why an Observation's subject is not used. Constant texts: the reference itself holds the patient's id.
NOT_THE_PATIENT = "skipped an Observation whose subject is not the request's patient"
UNCHECKABLE = (
    "skipped an Observation whose subject is an absolute reference: the request names no fhirServer to check it against"
)
HISTORY = "/_history/"
VERSION_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}", re.ASCII)  # FHIR R4 references.html, the literal reference pattern

# LOINC answers for metabolizer status (LL3856-3) -> CPIC terms.
LOINC_PHENOTYPES = {
    "LA10315-2": "Ultrarapid Metabolizer",
    "LA25390-8": "Rapid Metabolizer",
    "LA25391-6": "Normal Metabolizer",
    "LA10317-8": "Intermediate Metabolizer",
    "LA9657-3": "Poor Metabolizer",
}


# These helpers run for every Observation of every call: plain loops, no intermediate lists.
def _codings(concept: Any) -> list[Any] | tuple[()]:
    if type(concept) is dict:
        codings = concept.get("coding")
        if type(codings) is list:
            return codings
    return ()


def _has_code(concept: Any, wanted: frozenset[tuple[str, str]]) -> bool:
    for coding in _codings(concept):
        if type(coding) is dict and (coding.get("system"), coding.get("code")) in wanted:
            return True
    return False


def _strict_pair(coding: Any) -> tuple[str | None, str | None] | None:
    """A Coding's (system, code), or None if it or either of them is not of its R4 type."""
    if type(coding) is not dict:
        return None
    system, code = coding.get("system"), coding.get("code")
    if (system is None or type(system) is str) and (code is None or type(code) is str):
        return system, code
    return None


def _texts(concept: Any) -> Iterator[str]:
    """Candidate strings of a CodeableConcept, most human first: text, displays, codes.

    Lazily: the first is usually the one read.
    """
    if type(concept) is not dict:
        return
    text = _stripped(concept.get("text"))
    if text:
        yield text
    codings = _codings(concept)
    for key in ("display", "code"):
        for coding in codings:
            text = _stripped(coding.get(key)) if type(coding) is dict else ""
            if text:
                yield text


def _value_texts(obs: dict[str, Any]) -> Iterator[str]:
    """Candidate strings of a genotype's value, ``valueString`` first, lazily."""
    text = _stripped(obs.get("valueString"))
    if text:
        yield text
    yield from _texts(obs.get("valueCodeableConcept"))


def _stripped(text: Any) -> str:
    """``text`` without surrounding white space; "" if it is not a string."""
    return text.strip() if type(text) is str else ""


def resources_of(value: Any, resource_type: str) -> list[dict[str, Any]]:
    """The resources of one type in a prefetch value: a Bundle is unpacked, anything else skipped."""
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") == "Bundle":
        found = []
        for entry in value.get("entry") or []:
            inner = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(inner, dict) and inner.get("resourceType") == resource_type:
                found.append(inner)
        return found
    return [value] if value.get("resourceType") == resource_type else []


# What ``_usable`` knows of the request's patient (``patient_refs``): ("Patient/<id>", the request's
# fhirServer, its prefetch/fetch values, what ``_subject_problem`` found and keeps for the request). A
# tuple: built for every call, where an instance of a class cost five times as much, and most calls only
# ever compare its first item.
PatientRefs = tuple[str, str | None, list[Any], dict[str, Any]]


def patient_refs(patient_id: str, fhir_server: str | None = None, values: list[Any] | None = None) -> PatientRefs:
    """What an Observation's subject is compared with, for one request (``_subject_problem``)."""
    return "Patient/" + patient_id, fhir_server, values or [], {}


def _subject_problem(obs: dict[str, Any], reference: Any, patient: PatientRefs) -> str | None:
    """None if ``reference`` names the request's patient, else why it does not (a constant: no ids).

    The caller has compared it with ``Patient/<id>``, the usual. FHIR R4 (references.html,
    bundle.html#references) also allows, and this accepts:
    - ``<fhirServer>/Patient/<id>``, absolute on the request's own FHIR server: scheme, host and port
      compared as URLs are (case-insensitively, default port), the path exactly, a trailing slash
      ignored. The same id on another server is another patient, whose genotype must never reach
      this one's card. Without a fhirServer such a reference cannot be checked, and is skipped;
    - either of them with ``/_history/<version>``: a version of the same Patient;
    - ``urn:uuid:<uuid>``: only as the ``fullUrl`` of a Patient entry, with the patient's id, in the
      same Bundle as the Observation (a urn:uuid means nothing outside its Bundle).
    """
    if type(reference) is not str:
        return NOT_THE_PATIENT
    relative, server, values, found = patient
    if is_urn_uuid(reference):
        if "urns" not in found:
            found["urns"] = _bundle_patients(values, relative[len("Patient/") :])
        return None if reference in found["urns"].get(id(obs), ()) else NOT_THE_PATIENT
    head, history, version = reference.partition(HISTORY)
    if history and not VERSION_ID.fullmatch(version):
        return NOT_THE_PATIENT
    if head == relative:
        return None
    if not head.endswith("/" + relative):
        return NOT_THE_PATIENT
    if "server" not in found:
        try:
            found["server"] = BaseUrl.parse(server) if server is not None else None
        except UnusableUrl:  # not from a checked request (a request's fhirServer is parsed when it is read)
            found["server"] = None
    if found["server"] is None:
        return UNCHECKABLE
    try:
        base = BaseUrl.parse(head[: -len(relative) - 1])
    except UnusableUrl:
        return NOT_THE_PATIENT
    return None if base == found["server"] else NOT_THE_PATIENT


def _bundle_patients(values: list[Any], patient_id: str) -> dict[int, set[str]]:
    """``id`` of each resource in a Bundle -> the urn:uuid fullUrls of that Bundle's Patient entries with
    ``patient_id`` (Bundles with none left out). Keyed by ``id``: the values stay alive through the request."""
    found: dict[int, set[str]] = {}
    for value in values:
        entries = value.get("entry") if type(value) is dict and value.get("resourceType") == "Bundle" else None
        entries = [entry for entry in entries if type(entry) is dict] if type(entries) is list else []
        urns = set()
        for entry in entries:
            resource, full_url = entry.get("resource"), entry.get("fullUrl")
            if (
                type(resource) is dict
                and resource.get("resourceType") == "Patient"
                and resource.get("id") == patient_id
                and is_urn_uuid(full_url)
            ):
                urns.add(full_url)
        if urns:
            for entry in entries:
                if type(entry.get("resource")) is dict:
                    found[id(entry["resource"])] = urns
    return found


class ResultReader:
    """Reads PGx Observations for one library's genes and drugs (its lookup tables built once)."""

    def __init__(
        self, genes: Mapping[str, GeneDefinition], rules_by_code: Mapping[str, tuple[tuple[RuleLookup, Drug], ...]]
    ):
        self._genes = genes
        self._by_hgnc = {gene.hgnc: symbol for symbol, gene in genes.items()}
        self._by_symbol = {symbol.casefold(): symbol for symbol in genes}
        # An HLA typing may carry only its locus letter ("B*57:01/B*07:02"): B is HLA-B.
        self._by_symbol.update({symbol[4:].casefold(): symbol for symbol in genes if symbol.startswith("HLA-")})
        # Exact spellings first: most servers send "HGNC:2621" or "CYP2C19" as they are.
        self._exact = {**{symbol: symbol for symbol in genes}, **self._by_hgnc}
        self._rules_by_code = rules_by_code
        self._text_genes: dict[str, str | None] = {}  # a value's text -> the gene it starts with (``_value_gene``)

    def unread(self, genes: Container[str], triaged: Triaged) -> Unread:
        """Which prefetched Observations certainly cannot change a card for ``genes``, so need not be
        checked: a genotype or implication whose code and gene-studied component, every part of
        them of its R4 type, name one of our genes outside ``genes``.

        Any doubt (a part of the wrong type, no gene named, not a PGx result at all) answers False,
        and the Observation is checked whole as before: an unreadable result about a gene the
        order needs is still refused, never skipped. A malformed result about another gene no
        longer costs the clinician the cards of this order.

        Whatever it finds, read or not, is kept in ``triaged`` (by ``id`` of the Observation, as
        ``_triage`` would answer) for ``read`` of the same request, which then need not look again.
        """

        # Inline, without lists: it runs for every Observation of every call.
        def unread(obs: dict[str, Any]) -> bool:
            if obs.get("resourceType") != "Observation":
                return False
            code = obs.get("code")
            codings = code.get("coding") if type(code) is dict else None
            if type(codings) is not list:
                return False
            kind = None
            for coding in codings:
                pair = _strict_pair(coding)
                if pair is None:
                    return False
                kind = KINDS.get(pair)
                if kind is not None:
                    break
            components = obs.get("component")
            if kind is None or type(components) is not list:
                return False
            for component in components:
                code = component.get("code") if type(component) is dict else None
                codings = code.get("coding") if type(code) is dict else None
                if type(codings) is not list:
                    return False
                for coding in codings:
                    pair = _strict_pair(coding)
                    if pair is None:
                        return False
                    if pair == GENE_STUDIED_CODE:  # this component names the gene
                        gene = self._strict_gene(component.get("valueCodeableConcept"))
                        if gene is DOUBT:
                            return False
                        triaged[id(obs)] = obs, kind, True, gene  # needed gene or not
                        # A gene not ours (None) is read on: an implication may still take its gene elsewhere.
                        return gene is not None and gene not in genes
            return False

        return unread

    def _strict_gene(self, value: Any) -> Any:
        """As ``_studied_gene``, or DOUBT if any part it reads is not of its R4 type.

        Unless the first gene named is an exact code, every coding and the text are checked, and
        codings naming two different genes are a doubt too: the first is the one read, but which
        gene such a result is about is not for the triage to settle.
        """
        codings = value.get("coding") if type(value) is dict else DOUBT
        if type(codings) is not list:
            return DOUBT
        found = None
        for coding in codings:
            if type(coding) is not dict:
                return DOUBT
            code = coding.get("code")
            if found is None and type(code) is str and code in self._exact:  # the usual case: an exact HGNC id
                return self._exact[code]
            display = coding.get("display")
            if not (code is None or type(code) is str) or not (display is None or type(display) is str):
                return DOUBT
            symbol = self._coding_gene(code, display)
            if found is None:
                found = symbol
            elif symbol is not None and symbol != found:
                return DOUBT
        text = value.get("text")
        if not (text is None or type(text) is str):
            return DOUBT
        return found or self._gene_symbol(text)

    def read(
        self,
        resources: Iterable[Any],
        patient_id: str,
        genes: Container[str] | None = None,
        triaged: Triaged | None = None,
        fhir_server: str | None = None,
    ) -> list[ReportedResult]:
        """Every usable PGx result for ``patient_id`` among the given prefetch/fetch values.

        ``genes``: read only results for these genes (None: all). Observations about other genes
        are recognised by their gene and left unparsed; no rule asked for them, so they cannot
        change a card. ``triaged``: what ``unread`` found about the same values in this request.
        ``fhir_server``: the request's fhirServer, the one server whose absolute Patient references
        name this patient (``_subject_problem``).
        """
        if type(resources) is not list:
            resources = list(resources)  # read twice: here, and by ``_subject_problem`` for a urn:uuid subject
        patient = patient_refs(patient_id, fhir_server, resources)
        triaged = triaged or {}
        wanted = genes if genes is not None else self._genes
        reports, implications = [], []  # implications: (Observation, which of our genes it names)
        # Genotype Observation id -> its gene, for implications derived from it; (Observation, gene) for one
        # naming a gene not wanted, checked only if an implication asks. Genotypes are read in one pass, in
        # order (the last of an id counts); implications after them. Keyed by id, not "Observation/id":
        # most genotypes are never asked for by an implication.
        genotype_genes: dict[str, Any] = {}
        for resource in resources:
            for obs in resources_of(resource, "Observation"):
                known = triaged.get(id(obs))
                kind, named, gene = known[1:] if known is not None and known[0] is obs else self._triage(obs)
                if kind != "genotype":
                    if kind is not None:
                        implications.append((obs, gene))
                    continue
                obs_id = obs.get("id")
                stated = self._value_gene(obs) if named else None
                if (stated is not None and stated != gene and (stated in wanted or gene in wanted)) or (
                    stated is None and gene in wanted and self._names_several_genes(obs)
                ):
                    # Its gene-studied component names no gene of ours (empty, null, an unknown HGNC id) or
                    # another one than its value, or several while its value names none, and one of them is a
                    # gene this order needs: skipping it could lose that gene's card, reading it would guess.
                    raise PrefetchInvalid(
                        "prefetch: a genotype's gene studied (LOINC 48018-6) is not the gene its value names"
                    )
                if gene is not None and gene not in wanted:
                    if type(obs_id) is str and obs_id:  # it may be unchecked (``unread``)
                        genotype_genes[obs_id] = obs, gene
                    continue
                gene, found = self._genotype(obs, named, gene, patient)
                if gene is not None and obs_id:
                    genotype_genes[obs_id] = gene
                reports += found

        def derived_gene(reference: str) -> str | None:
            """The gene of the genotype an implication is derived from, as if every genotype had been read."""
            if not reference.startswith(OBSERVATION):
                return None
            found = genotype_genes.get(reference[len(OBSERVATION) :])
            if type(found) is not tuple:
                return found  # a genotype read, or none
            obs, gene = found
            if not conforms(Observation)(obs):  # it may have been left unchecked (``unread``): check it now
                problems = shape_problems(Observation, obs, "prefetch: the genotype an implication is derived from")
                if problems:
                    raise PrefetchInvalid(*problems)
            return gene if next(_value_texts(obs), None) is not None and self._usable(obs, patient) else None

        for obs, gene in implications:
            reports += self._implication(obs, gene, derived_gene, wanted, patient)
        return reports

    @staticmethod
    def _usable(obs: dict[str, Any], patient: PatientRefs) -> bool:
        if obs.get("status") not in USABLE_STATUS:
            # Not the value itself: it comes from the request and could hold anything.
            log.info("skipped an Observation whose status is not %s", "/".join(sorted(USABLE_STATUS)))
            return False
        reference = obs.get("subject")
        reference = reference.get("reference") if type(reference) is dict else None
        if reference == patient[0]:  # "Patient/<id>", the usual case: one comparison
            return True
        problem = _subject_problem(obs, reference, patient)
        if problem is not None:
            # Never use a result that is not explicitly this patient's. The message is a constant: no ids.
            log.warning(problem)
            return False
        return True

    def _gene_symbol(self, text: Any) -> str | None:
        """One of our genes, from an HGNC id ("HGNC:2621") or a symbol ("CYP2C19")."""
        if type(text) is not str:
            return None
        exact = self._exact.get(text)
        if exact is not None:
            return exact
        text = text.strip()
        return self._by_hgnc.get(text) or self._by_symbol.get(text.casefold())

    def _triage(self, obs: dict[str, Any]) -> Triage:
        """(kind of PGx result or None, whether it names its gene, which of our genes that is).

        One look at the code and the components, inline: it runs for every Observation of every
        call, most of them about genes no rule of the order needs.
        """
        concept = obs.get("code")
        codings = concept.get("coding") if type(concept) is dict else None
        kind = None
        for coding in codings if type(codings) is list else ():
            if type(coding) is dict:
                kind = KINDS.get((coding.get("system"), coding.get("code")))
                if kind is not None:
                    break
        if kind is None:
            return None, False, None
        components = obs.get("component")
        for component in components if type(components) is list else ():
            code = component.get("code") if type(component) is dict else None
            codings = code.get("coding") if type(code) is dict else None
            for coding in codings if type(codings) is list else ():
                if type(coding) is dict and (coding.get("system"), coding.get("code")) in GENE_STUDIED:
                    return kind, True, self._studied_gene(component.get("valueCodeableConcept"))
        return kind, False, None

    def _studied_gene(self, value: Any) -> str | None:
        """Which of our genes a gene-studied component's value names (None: none of ours)."""
        for coding in _codings(value):
            if type(coding) is dict:
                symbol = self._coding_gene(coding.get("code"), coding.get("display"))
                if symbol:
                    return symbol
        return self._gene_symbol(value.get("text")) if type(value) is dict else None

    def _names_several_genes(self, obs: dict[str, Any]) -> bool:
        """Whether a genotype's gene-studied component names more than one of our genes (its codings and
        text): read as its first, a value with no gene of its own ("*1/*4") would be a guess."""
        for component in obs.get("component") or ():
            if type(component) is dict and _has_code(component.get("code"), GENE_STUDIED):
                value = component.get("valueCodeableConcept")
                named = {self._coding_gene(c.get("code"), c.get("display")) for c in _codings(value) if type(c) is dict}
                named.add(self._gene_symbol(value.get("text")) if type(value) is dict else None)
                return len(named - {None}) > 1
        return False

    def _value_gene(self, obs: dict[str, Any]) -> str | None:
        """Which of our genes a genotype's value starts with ("CYP2C19 *2/*2"), if any: the first of its
        texts, in ``_value_texts`` order, that names one.

        Asked of every genotype in a request, wanted or not, so written out rather than with those
        generators; what each text names is remembered (labs repeat the same few values), up to
        ``TEXTS_KEPT`` of them.
        """
        text = obs.get("valueString")
        symbol = self._text_gene(text) if text is not None else None  # the usual value has none
        if symbol:
            return symbol
        concept = obs.get("valueCodeableConcept")
        if type(concept) is not dict:
            return None
        symbol = self._text_gene(concept.get("text"))
        if symbol:
            return symbol
        codings = concept.get("coding")
        if type(codings) is list:
            for key in ("display", "code"):
                for coding in codings:
                    symbol = self._text_gene(coding.get(key)) if type(coding) is dict else None
                    if symbol:
                        return symbol
        return None

    def _text_gene(self, text: Any) -> str | None:
        """The gene a value's text starts with (``_leading_word``), remembered."""
        if type(text) is not str:
            return None
        known = self._text_genes
        symbol = known.get(text, DOUBT)
        if symbol is DOUBT:
            stripped = text.strip()
            symbol = self._gene_symbol(_leading_word(stripped)) if stripped else None
            if len(known) < TEXTS_KEPT:
                known[text] = symbol
        return symbol  # type: ignore[return-value]

    def _coding_gene(self, code: Any, display: Any) -> str | None:
        """Which of our genes one coding of a gene-studied value names: by its code, else its display."""
        symbol = self._exact.get(code) if type(code) is str else None  # the usual case, inline
        return symbol or self._gene_symbol(code) or self._gene_symbol(display)

    def _genotype(
        self, obs: dict[str, Any], named: bool, gene: str | None, patient: PatientRefs
    ) -> tuple[str | None, list[ReportedResult]]:
        """(gene, results) of a genotype Observation whose gene-studied component gave (named, gene).

        The value is read from its first text (text, then displays, then codes); the others go
        with it as other spellings, and one result per phenotype component: interpretation then
        refuses to pick a side if any of them gives another call (a text "*1/*1" beside a coded
        "*2/*2", or the lab's own "Poor metabolizer" beside "*1/*1"). A text that cannot be read
        (an opaque ClinVar code) disagrees with nothing.
        """
        if named and gene is None:
            return None, []  # a gene we have no definitions for
        texts = list(dict.fromkeys(_value_texts(obs)))
        # The gene definition decides what a value means (it may be "-1639 GA"): without a gene-studied
        # component, the first text that names one of our genes gives the gene and is the one read.
        first = next((text for text in texts if gene or self._text_gene(text)), None)
        if first is None:
            if texts:
                log.info("skipped a genotype Observation with no recognised gene and diplotype")
            return None, []
        symbol = gene or self._text_gene(first)
        if symbol is None or not self._usable(obs, patient):
            return None, []
        effective = _effective(obs)
        others = tuple(text for text in texts if text != first)
        reports = [ReportedResult(symbol, diplotype=first, effective=effective, other_spellings=others)]
        for phenotype in self._component_phenotypes(obs):
            reports.append(ReportedResult(symbol, phenotype=phenotype, effective=effective))
        return symbol, reports

    @staticmethod
    def _component_phenotypes(obs: dict[str, Any]) -> list[str]:
        """The phenotypes stated in an Observation's phenotype components, each of its texts once."""
        found: list[str] = []
        for component in obs.get("component") or []:
            if isinstance(component, dict) and _has_code(component.get("code"), PHENOTYPE_COMPONENTS):
                found += _phenotype_texts(component.get("valueCodeableConcept"))
        return list(dict.fromkeys(found))

    def _implication(
        self,
        obs: dict[str, Any],
        gene: str | None,
        derived_gene: Callable[[str], str | None],
        wanted: Container[str],
        patient: PatientRefs,
    ) -> list[ReportedResult]:
        """The phenotypes a therapeutic implication states: one result per distinct wording, so that a
        LOINC answer and a text that disagree are both seen (and the gene called Indeterminate)."""
        if gene is None:
            for reference in obs.get("derivedFrom") or []:
                if gene is None and isinstance(reference, dict):
                    gene = derived_gene(str(reference.get("reference")))
        if gene is None:
            gene = self._gene_from_assessed_drug(obs)
        if gene is None:
            log.info("skipped a therapeutic implication whose gene could not be determined")
            return []
        if gene not in wanted or not self._usable(obs, patient):
            return []
        phenotypes = []
        if _has_code(obs.get("code"), METABOLISM_EFFECTS):
            phenotypes = _phenotype_texts(obs.get("valueCodeableConcept"))
        if not phenotypes:  # the first phenotype component, as before; its texts must agree
            for component in obs.get("component") or []:
                if isinstance(component, dict) and _has_code(component.get("code"), PHENOTYPE_COMPONENTS):
                    phenotypes = _phenotype_texts(component.get("valueCodeableConcept"))
                    if phenotypes:
                        break
        effective = _effective(obs)
        return [ReportedResult(gene, phenotype=phenotype, effective=effective) for phenotype in phenotypes]

    def _gene_from_assessed_drug(self, obs: dict[str, Any]) -> str | None:
        genes = set()
        for component in obs.get("component") or []:
            if isinstance(component, dict) and _has_code(component.get("code"), MEDICATION_ASSESSED):
                for coding in _codings(component.get("valueCodeableConcept")):
                    if coding.get("system") == RXNORM_SYSTEM:
                        entries = self._rules_by_code.get(str(coding.get("code")), ())
                        genes.update(lookup.rule.gene for lookup, _ in entries if lookup.rule.single_gene)
        return genes.pop() if len(genes) == 1 else None


def _leading_word(value: str) -> str:
    """The gene symbol a diplotype string may start with: "CYP2C19" in "CYP2C19 *1/*2" or "CYP2C19*2/*2".

    A single letter counts only as an HLA locus with its allele attached ("B*57:01/B*07:02"): the
    "B" of G6PD's "B (reference)/B (reference)" or the "A" of "A / B" names no gene.
    """
    head = value.split("*", 1)[0]
    words = head.split()
    if not words:
        return ""
    word = words[0]
    if len(word) == 1 and (head != word or "*" not in value):
        return ""
    return word


def _phenotype_texts(concept: Any) -> list[str]:
    """Every phenotype a value states, each once: LOINC answers as CPIC terms, then texts and displays.

    All of them, not the first: a LOINC answer and a text that disagree must both reach the
    interpretation, which then calls the gene Indeterminate. An unmapped LOINC answer code
    ("LA...") is left out; a wording no gene knows is Indeterminate there and outweighs nothing.
    """
    found = []
    for coding in _codings(concept):
        if type(coding) is dict and coding.get("system") == LOINC and coding.get("code") in LOINC_PHENOTYPES:
            found.append(LOINC_PHENOTYPES[coding["code"]])
    found += [text for text in _texts(concept) if not text.startswith("LA")]
    return list(dict.fromkeys(found))


def _effective(obs: dict[str, Any]) -> str | None:
    value = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or obs.get("issued")
    return value[:10] if isinstance(value, str) and value else None

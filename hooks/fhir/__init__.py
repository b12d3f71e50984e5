"""Reading the patient's FHIR data: resource shapes, prefetch or the EHR's server, PGx Observations, patient
facts.
"""

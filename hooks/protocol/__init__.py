"""What the EHR and the service say to each other: discovery, request models, error outcomes, size limits, the
FHIR servers a request may name.
"""

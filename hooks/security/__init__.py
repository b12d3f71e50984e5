"""Who may call: the EHR's signed JWT, its issuers' keys, replayed tokens, the ASGI guard."""

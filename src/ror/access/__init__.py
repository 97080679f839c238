"""Access control: callers, access profiles (0–5), confidentiality levels (1–3), element-level filtering."""

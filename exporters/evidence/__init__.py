"""Evidence exports for testing agencies: record workbook (xlsx), HTML report (+ optional PDF), JSON,
risk view, rectification report, and the signed zip bundle holding all of them."""

#!/usr/bin/env python3
"""Scrapes a Prometheus metrics endpoint with a real HTTP GET and parses the text with the
reference parser (prometheus_client.parser). Prints the metric families as JSON:
{"name": {"type": "...", "samples": [{"name": ..., "labels": {...}, "value": ...}, ...]}, ...}

Usage: scripts/scrape-metrics.py URL
Exit codes: 0 parsed; 2 the GET failed or was not 200; 3 the text is not valid Prometheus text
format; 4 prometheus_client is not installed (pip install prometheus-client).
"""
import json
import sys
import urllib.error
import urllib.request


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        print("prometheus_client is missing: python3 -m pip install prometheus-client", file=sys.stderr)
        return 4
    url = sys.argv[1]
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status = response.status
            content_type = response.headers.get("Content-Type", "")
            text = response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        print(f"GET {url}: HTTP {error.code}", file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as error:
        print(f"GET {url}: {error}", file=sys.stderr)
        return 2
    if status != 200:
        print(f"GET {url}: HTTP {status}", file=sys.stderr)
        return 2
    try:
        families = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = {
                "type": family.type,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
            }
    except Exception as error:  # the parser raises ValueError and others on malformed text
        print(f"not Prometheus text format: {error}\n---\n{text}", file=sys.stderr)
        return 3
    json.dump({"content_type": content_type, "families": families}, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

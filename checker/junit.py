"""``unmapcheck prove --junit FILE``: the results as JUnit XML, which CI systems read.

One ``<testcase>`` per obligation (classname ``unmapcheck.<kind>``): PROVED and FOUND pass;
FAILED is a ``<failure>`` with the detail and the counterexample; UNKNOWN is an ``<error>``
(undecided is not passed: a CI run must not go green on a search that was cut short).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


def junit_xml(results, seconds: float) -> str:
    from .console import status_label
    suite = ET.Element("testsuite", name="unmapcheck prove", tests=str(len(results)),
                       failures=str(sum(r.status == "FAILED" for r in results)),
                       errors=str(sum(r.status == "UNKNOWN" for r in results)),
                       skipped="0", time=f"{seconds:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"unmapcheck.{r.kind}", name=r.name,
                             time=f"{r.seconds:.3f}")
        ET.SubElement(case, "properties")
        props = case.find("properties")
        ET.SubElement(props, "property", name="bound", value=r.bound)
        ET.SubElement(props, "property", name="result", value=status_label(r))
        text = r.detail + (f"\n{r.data['counterexample']}" if r.data.get("counterexample")
                           else "")
        if r.status == "FAILED":
            ET.SubElement(case, "failure", message=r.detail[:500], type="FAILED").text = text
        elif r.status == "UNKNOWN":
            ET.SubElement(case, "error", message=r.detail[:500], type="UNKNOWN").text = text
        else:
            ET.SubElement(case, "system-out").text = f"{status_label(r)}: {r.detail}"
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_junit(path: str, results, seconds: float) -> None:
    from .trace import write_atomic
    write_atomic(path, junit_xml(results, seconds))

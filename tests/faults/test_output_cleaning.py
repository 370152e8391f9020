"""The one output sanitizer both views use (``lab2land.sanitize``), on the shapes that slipped."""

from __future__ import annotations

from lab2land import sanitize

PNG = "iVBORw0KGgo="


def test_image_sizes_are_numbers_or_dropped():
    output = {"output_type": "display_data", "data": {"image/png": PNG},
              "metadata": {"width": "1 onload=alert(1)", "height": "20",
                           "image/png": {"width": 3.5, "height": "2 onerror=x", "unconfined": True}}}
    clean = sanitize.clean_output(output)
    assert clean["metadata"] == {"height": 20, "image/png": {"width": 3.5, "unconfined": True}}
    assert output["metadata"]["width"] == "1 onload=alert(1)"  # a copy: the notebook is not changed


def test_script_is_dropped_and_markdown_becomes_clean_html_for_dashboards():
    assert sanitize.clean_output({"output_type": "display_data", "metadata": {},
                                  "data": {"application/javascript": "x()", "text/plain": "<Javascript>"}}) is None
    clean = sanitize.clean_dashboard_output({"output_type": "display_data", "metadata": {}, "data": {
        "text/markdown": "[a](javascript:x()) <img src=x onerror=y()>"}})
    assert set(clean["data"]) == {"text/html"}
    assert "javascript:" not in clean["data"]["text/html"] and "onerror" not in clean["data"]["text/html"]


def test_widget_html_values_are_cleaned_and_other_values_kept():
    html = sanitize.clean_widget_state("HTMLModel", {"value": "<b>a</b><img src=x onerror=y()>"})
    assert html["value"] == "<b>a</b><img src=\"x\">"
    assert sanitize.clean_widget_state("TextModel", {"value": "a < b"})["value"] == "a < b"
    described = sanitize.clean_widget_state("CheckboxModel", {"description": "<i onclick=x()>d</i>",
                                                              "description_allow_html": True})
    assert described["description"] == "<i>d</i>"
    output = sanitize.clean_widget_state("OutputModel", {"outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {"text/html": "<script>x()</script>ok"}}]})
    assert output["outputs"][0]["data"]["text/html"] == "ok"


def test_static_and_live_policies_are_one_policy():
    static, live = (sanitize.content_security_policy(widgets=True, live=flag) for flag in (False, True))
    assert static.replace("connect-src 'none'", "connect-src 'self'") == live
    assert "'unsafe-inline'" not in static.split("script-src", 1)[1].split(";")[0]

"""XMP: the metadata packet image tools, stock sites and search engines read for "made by AI".

IPTC's `Iptc4xmpExt:DigitalSourceType` is what Google, Adobe, Meta and others read as the AI label. The
same packet carries keypaint's JSON in JPEG and WebP files, which have no PNG-style text chunks.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from keypaint.provenance.settings import AI_NOTICE, DIGITAL_SOURCE_TYPE

_PACKET = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:keypaint="https://keypaint.invalid/ns/1.0/"
    Iptc4xmpExt:DigitalSourceType="{source}"
    xmp:CreatorTool="{tool}"{created}>
   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{notice}</rdf:li></rdf:Alt></dc:description>{extra}
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

_SOURCE = re.compile(r"DigitalSourceType(?:=\"([^\"]*)\"|>([^<]*)<)")
_METADATA = re.compile(r"<keypaint:metadata>(.*?)</keypaint:metadata>", re.S)


def build_xmp(tool: str, created: str | None = None, metadata: dict[str, Any] | None = None) -> str:
    """An XMP packet marking the picture as trainedAlgorithmicMedia; `metadata` embeds keypaint's JSON."""
    extra = ""
    if metadata is not None:
        text = html.escape(json.dumps(metadata, ensure_ascii=False), quote=False)
        extra = f"\n   <keypaint:metadata>{text}</keypaint:metadata>"
    return _PACKET.format(
        source=DIGITAL_SOURCE_TYPE,
        tool=html.escape(tool),
        created=f'\n    xmp:CreateDate="{html.escape(created)}"' if created else "",
        notice=html.escape(AI_NOTICE),
        extra=extra,
    )


def digital_source_type(xmp: str | bytes | None) -> str | None:
    """The IPTC DigitalSourceType an XMP packet declares (attribute or element form), if any."""
    if not xmp:
        return None
    text = xmp.decode("utf-8", errors="replace") if isinstance(xmp, bytes) else xmp
    match = _SOURCE.search(text)
    return html.unescape(match.group(1) or match.group(2)).strip() if match else None


def embedded_metadata(xmp: str | bytes | None) -> dict[str, Any] | None:
    """keypaint's JSON from a packet written by `build_xmp`, or None (absent or unreadable)."""
    if not xmp:
        return None
    text = xmp.decode("utf-8", errors="replace") if isinstance(xmp, bytes) else xmp
    match = _METADATA.search(text)
    if match is None:
        return None
    try:
        data = json.loads(html.unescape(match.group(1)))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None

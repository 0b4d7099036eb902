"""Provenance and responsible use: every picture says it was made by AI, and can be checked for it.

- `settings`: `ProvenanceSettings`, which marks are written (all, unless turned off explicitly);
- `xmp`: IPTC DigitalSourceType = trainedAlgorithmicMedia in XMP (PNG iTXt, JPEG/WebP XMP + EXIF);
- `watermark`: the invisible watermark ("keypaint" + a picture id), invisible-watermark's dwtDctSvd;
- `credentials`: C2PA content credentials signed with c2pa-python (local self-signed CA by default);
- `marks`: applies them when a picture is saved (keypaint.outputs.results.save_generated);
- `verify`: `verify_image(path) -> VerifyReport` for `keypaint verify` and `POST /api/verify`;
- `policy`: `ContentPolicy`, blocked keywords refused before any compute (`PolicyRefusal`).

Submodules are imported where used: the watermark and C2PA ones pull in OpenCV and the c2pa library,
which the policy check (run by `Painter.resolve`) must not wait for.
"""

"""Writes an 8-bit gray PNG in the formats cameras write, with Pillow (not our
code): tests/test_image_io.cpp converts a real DAGM 2007 image with it at run
time, so that nothing converted is committed.

usage: convert_with_pillow.py SRC.png OUT_DIR
         writes OUT_DIR/pillow_{gray16.tif,rgb8.tif,jpeg.jpg,bmp.bmp,pgm.pgm,ppm.ppm}
       convert_with_pillow.py --decode FILE OUT.raw
         writes Pillow's reading of FILE as 8-bit gray bytes: an independent
         decoder's answer for files whose writer was lossy
Exits 77 (a visible skip) where Pillow is not installed (Debian: python3-pil).
"""
import sys

try:
    from PIL import Image
except ImportError:
    print("Pillow is not installed (Debian: python3-pil)")
    sys.exit(77)

if sys.argv[1] == "--decode":
    with open(sys.argv[3], "wb") as f:
        f.write(Image.open(sys.argv[2]).convert("L").tobytes())
    sys.exit(0)

src, out = sys.argv[1], sys.argv[2]
gray = Image.open(src)
if gray.mode != "L":
    sys.exit(f"{src}: expected an 8-bit gray image, got mode {gray.mode}")

# 8 to 16 bits exactly: v * 257 = v * 65535 / 255, so the reader's scaling
# by 255 / 65535 must give v back.
gray.convert("I").point(lambda v: v * 257).convert("I;16").save(f"{out}/pillow_gray16.tif")
gray.convert("RGB").save(f"{out}/pillow_rgb8.tif")
# JPEG at quality 90, Pillow's usual choice for inspection images.
gray.save(f"{out}/pillow_jpeg.jpg", quality=90)
gray.save(f"{out}/pillow_bmp.bmp")
gray.save(f"{out}/pillow_pgm.pgm")
gray.convert("RGB").save(f"{out}/pillow_ppm.ppm")

#!/bin/sh
# Regenerates tests/data from sample.ps and the Python generator (needs ghostscript, python3).
set -eu
cd "$(dirname "$0")/../tests/data"
export SOURCE_DATE_EPOCH=0
gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pdfwrite -sOutputFile=sample.pdf sample.ps
gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pdfwrite -sOwnerPassword=owner -sUserPassword=secret \
   -dEncryptionR=3 -dKeyLength=128 -sOutputFile=hostile/encrypted.pdf sample.ps
gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pdfwrite -sOwnerPassword=owner -dEncryptionR=3 -dKeyLength=128 \
   -sOutputFile=owner-only.pdf sample.ps
gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=tiffg4 -r50 -sOutputFile=g4.tif sample.ps
python3 ../../scripts/make_hostile.py

# The upstream flyteidl release this agent speaks, fetched from the npm registry at configure time.
# FLYTEIDL_SHA512 is the npm `dist.integrity` of the tarball, as hex.
set(FLYTEIDL_NPM_PACKAGE "@flyteorg/flyteidl")
set(FLYTEIDL_VERSION "1.16.5")
set(FLYTEIDL_SHA512 "98c8e3c3343ebfdb734a8211834539d3a511e2d4726fcb6c6297331c9e9c1e6f59f88113c13240da357c35df28a563598103aaf67b93dfde0b798cf7f4a5636a")

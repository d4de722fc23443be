#!/usr/bin/env python3
"""Write a synthetic plain-format pg_dump (header, a table, one big COPY block, an index,
the trailer) of about SIZE_MB megabytes to stdout. Rows are random hex, so gzip compresses
them about as well as real data (2-3x); a 16 MiB block of rows is repeated with fresh ids."""
import os
import sys

size = int(sys.argv[1]) * 1000 * 1000
out = sys.stdout.buffer
out.write(b"--\n-- PostgreSQL database dump\n--\n\n")
out.write(b"SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n")
out.write(b"SET standard_conforming_strings = on;\n")
out.write(b"SELECT pg_catalog.set_config('search_path', '', false);\n\n")
out.write(b"CREATE TABLE public.bench (id bigint NOT NULL, k integer, a text, b text);\n\n")
out.write(b"COPY public.bench (id, k, a, b) FROM stdin;\n")
rnd = os.urandom(16 * 1024 * 1024).hex()
tails = []
pos = 0
while pos + 96 <= len(rnd) and len(tails) < 120000:
    tails.append("\t" + rnd[pos:pos + 32] + "\t" + rnd[pos + 32:pos + 96] + "\n")
    pos += 96
written = 0
row = 0
while written < size:
    lines = []
    for t in tails:
        row += 1
        lines.append(str(row) + "\t" + str(row % 1000) + t)
    blob = "".join(lines).encode()
    out.write(blob)
    written += len(blob)
out.write(b"\\.\n\n\nCREATE INDEX bench_k ON public.bench USING btree (k);\n\n")
out.write(b"--\n-- PostgreSQL database dump complete\n--\n\n")
sys.stderr.write("rows %d, bytes %d\n" % (row, written))

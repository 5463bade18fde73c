"""sentence-transformers throughput on the same SciFact passages as embed_bench (bench/embed/run).

usage: st_bench.py MODEL_DIR CORPUS N REPEAT [--batch-size 32] [--dump vectors.json]
Prints a human line and a last line `RESULT {json}`, like the Rust example.
"""
import argparse
import json
import time

import torch
from sentence_transformers import SentenceTransformer

p = argparse.ArgumentParser()
p.add_argument("model_dir")
p.add_argument("corpus")
p.add_argument("n", type=int)
p.add_argument("repeat", type=int)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--dump")
a = p.parse_args()

texts = []
with open(a.corpus, encoding="utf-8") as f:
    for line in f:
        if line.strip():
            d = json.loads(line)
            texts.append(f"{d.get('title') or ''} {d.get('text') or ''}")
        if len(texts) == a.n:
            break

t0 = time.perf_counter()
model = SentenceTransformer(a.model_dir, device="cpu")
load_s = time.perf_counter() - t0
tok = model.tokenizer
tokens = sum(len(tok(t.strip(), truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts)
model.encode(texts[:16], batch_size=a.batch_size)  # warm-up

best = best_cpu = float("inf")
vectors = None
with torch.inference_mode():
    for _ in range(max(1, a.repeat)):
        t, c = time.perf_counter(), time.process_time()
        vectors = model.encode(texts, batch_size=a.batch_size, convert_to_numpy=True)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)

pps, tps = len(texts) / best, tokens / best
print(
    f"sentence-transformers: {len(texts)} passages, {tokens} tokens, {torch.get_num_threads()} threads, "
    f"batch {a.batch_size}: {best:.2f} s, {pps:.1f} passages/s, {tps:.0f} tokens/s (load {load_s:.2f} s; "
    f"{tokens / best_cpu:.0f} tokens per CPU-second)"
)
if a.dump:
    with open(a.dump, "w") as f:
        json.dump(vectors.tolist(), f)
print("RESULT " + json.dumps({
    "impl": "sentence-transformers",
    "passages": len(texts), "tokens": tokens, "threads": torch.get_num_threads(),
    "seconds": best, "passages_per_s": pps, "tokens_per_s": tps, "cpu_seconds": best_cpu,
    "versions": {"sentence_transformers": __import__("sentence_transformers").__version__, "torch": torch.__version__},
}))

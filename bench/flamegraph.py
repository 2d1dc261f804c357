"""Folds `perf script` output into stacks and draws them as a flame graph (SVG), with a text
summary beside it: the functions with the most samples on top of the stack (self) and anywhere
in it (total), and how the top five are reached. Used by bench/run_profile.sh.

    flamegraph.py PERF_SCRIPT_OUTPUT OUT_PREFIX TITLE   ->   OUT_PREFIX.svg, OUT_PREFIX.txt"""
import collections
import html
import re
import sys

WIDTH, ROW, FONT = 1200, 16, 11


def fold(lines):
    """perf script's samples (a header line naming the thread, then one frame a line, then a
    blank line) as a Counter of root-first stacks, each rooted at its thread's name, and the
    number of samples taken in the kernel."""
    stacks = collections.Counter()
    frames = []
    thread = "?"
    in_kernel = 0
    top_in_kernel = False
    for line in lines + [""]:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                stacks[(f"thread {thread}",) + tuple(reversed(frames))] += 1
                in_kernel += top_in_kernel
            frames = []
        else:
            m = re.match(r"\s+[0-9a-f]+\s+(.+?)(?:\+0x[0-9a-f]+)?\s+\((.*)\)$", line)
            if not m:  # a sample's header: the thread's name first
                thread = re.sub(r"\s+\d+(/\d+)?\s.*$", "", line.strip()) or "?"
                continue
            name = m.group(1)
            if not frames:
                top_in_kernel = m.group(2) == "[kernel.kallsyms]"
            if name == "[unknown]":
                name = "[" + m.group(2).rsplit("/", 1)[-1] + "]"
            frames.append(re.sub(r"\(.*\)$", "", name))  # C++ parameter lists dropped
    return stacks, in_kernel


def tree(stacks):
    root = {"n": 0, "kids": {}}
    for stack, n in stacks.items():
        node = root
        node["n"] += n
        for frame in stack:
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += n
    return root


def color(name):
    h = sum(map(ord, name)) % 60
    return f"rgb({205 + h % 50},{80 + h},{40 + h // 2})"


def svg(root, title):
    total = root["n"]
    rects = []
    depth_max = [0]

    def walk(node, name, x, depth):
        w = node["n"] / total * WIDTH
        if w < 0.3:
            return
        depth_max[0] = max(depth_max[0], depth)
        rects.append((x, depth, w, name, node["n"]))
        for kid, child in sorted(node["kids"].items()):
            walk(child, kid, x, depth + 1)
            x += child["n"] / total * WIDTH

    x = 0.0
    for kid, child in sorted(root["kids"].items()):
        walk(child, kid, x, 0)
        x += child["n"] / total * WIDTH
    height = (depth_max[0] + 3) * ROW
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="monospace" font-size="{FONT}">',
           f'<text x="4" y="{ROW - 3}">{html.escape(title)} ({total} samples)</text>']
    for x, depth, w, name, n in rects:
        y = height - (depth + 1) * ROW
        label = html.escape(name)
        out.append(f'<g><title>{label} ({n} samples, {n / total:.1%})</title>'
                   f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{ROW - 1}" '
                   f'fill="{color(name)}"/>')
        chars = int(w / (FONT * 0.6))
        if chars >= 4:
            text = label if len(name) <= chars else html.escape(name[:chars - 2]) + ".."
            out.append(f'<text x="{x + 2:.1f}" y="{y + ROW - 4}">{text}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def summary(stacks, in_kernel, title, top=25):
    total = sum(stacks.values())
    self_n, total_n = collections.Counter(), collections.Counter()
    for stack, n in stacks.items():
        self_n[stack[-1]] += n
        for frame in set(stack):
            total_n[frame] += n
    threads = collections.Counter()
    for stack, n in stacks.items():
        threads[stack[0]] += n
    lines = [f"{title}: {total} samples, {in_kernel / total:.1%} of them in the kernel", "",
             "by thread:"]
    lines += [f"  {n / total:6.1%}  {t}" for t, n in threads.most_common()]
    lines += ["", "self (on top of the stack):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in self_n.most_common(top)]
    lines += ["", "total (anywhere in the stack):"]
    lines += [f"  {n / total:6.1%}  {f}" for f, n in total_n.most_common(top)]
    lines += ["", "how the top five are reached (the four frames under each, most common first):"]
    for f, _ in self_n.most_common(5):
        callers = collections.Counter()
        for stack, n in stacks.items():
            if stack[-1] == f:
                callers[" <- ".join(reversed(stack[-5:-1]))] += n
        lines.append(f"  {f}:")
        lines += [f"    {n / total:6.1%}  {c}" for c, n in callers.most_common(4)]
    return "\n".join(lines) + "\n"


def main():
    src, prefix, title = sys.argv[1:4]
    with open(src, errors="replace") as f:
        stacks, in_kernel = fold(f.readlines())
    if not stacks:
        sys.exit(f"{src}: no samples")
    with open(prefix + ".svg", "w") as f:
        f.write(svg(tree(stacks), title))
    with open(prefix + ".txt", "w") as f:
        f.write(summary(stacks, in_kernel, title))


if __name__ == "__main__":
    main()

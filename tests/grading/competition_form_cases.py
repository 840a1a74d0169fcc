"""Labelled (gold, response) pairs for the answer forms of MATH, NuminaMath and OpenThoughts data, each a
long response: reasoning with tentative values before the final answer.

Each category lists ``(gold, answer as written, label)``: the label is the verdict a MATH grader must give
under mathsft's lenient profile, and every rule that accepts a form has near misses labelled False (a
different matrix, an inequality flipped without the sign change, a proper subset of the answers, a number
whose comma is a thousands separator). ``carriers`` and ``gold-solution`` list whole responses or whole gold
solutions instead. ``build_suite`` wraps them deterministically (seeded) into responses: reasoning
paragraphs with intermediate results, then the answer in one of the carriers models use (``\\boxed{}`` in a
sentence or a display, R1 ``<think>`` then a boxed answer, Minerva's "Final Answer: The final answer is
$X$. I hope it is correct."). Shared by tests/grading/test_grading_competition_forms.py and
bench/grading_suite.py, which writes bench/grading_suite.jsonl for bench/grading_bench.py (mathsft and
math-verify on the same pairs).
"""

from __future__ import annotations

import random

SEED = 42

_STEPS = [
    "First, let me restate what is given and what we need to find, so that no quantity is misread.",
    "Substituting the known values, we get $2 \\cdot 3 + 4 = 10$, and dividing by $2$ gives $5$.",
    "Wait, I should double-check that step: $\\frac{6}{4} = \\frac{3}{2}$, so the ratio is $1.5$, not $2$.",
    "Expanding $(x+1)^2 = x^2 + 2x + 1$ and collecting the terms, the constant term is $1$.",
    "Hmm, at first I got $7$ here, but I dropped a sign; redoing it carefully gives a different value.",
    "Let me verify this with a quick check: plugging $x = 2$ back in gives $4 - 4 = 0$, as required.",
    "Alternatively, we can approach the problem from the other direction and see whether it agrees.",
    "The two cases have to be treated separately, since the expression changes sign at $x = 0$.",
    "By symmetry the second case mirrors the first one, so we only need to compute it once.",
    "Okay, so far so good. Let me make sure each step follows from the previous one before concluding.",
]


def _reasoning(rng: random.Random, topic: str) -> str:
    """Several paragraphs of working with intermediate numbers, a tentative value and a self-check."""
    steps = rng.sample(_STEPS, 5)
    steps.insert(2, topic)
    return "\n\n".join(steps)


def _carry(rng: random.Random, reasoning: str, answer: str) -> str:
    """The answer in one of the carriers models use, after the reasoning."""
    carrier = rng.choice(("sentence", "display", "heading", "r1", "minerva"))
    if carrier == "sentence":
        return f"{reasoning}\n\nTherefore, the final answer is $\\boxed{{{answer}}}$."
    if carrier == "display":
        return f"{reasoning}\n\nSo the final answer is:\n\\[\n\\boxed{{{answer}}}\n\\]"
    if carrier == "heading":
        return f"{reasoning}\n\n**Final Answer**\n\\[\n\\boxed{{{answer}}}\n\\]"
    if carrier == "r1":
        return (
            f"<think>\nOkay, let me work through this.\n\n{reasoning}\n</think>\n\n"
            f"Putting it together, the answer is $\\boxed{{{answer}}}$."
        )
    return f"{reasoning}\nFinal Answer: The final answer is ${answer}$. I hope it is correct."


# ---------------------------------------------------------------------------------------------------------
# Categories of (gold, answer as written, label)
# ---------------------------------------------------------------------------------------------------------

M22 = r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}"
MATRICES = [
    (M22, r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}", True),
    (M22, r"\left[\begin{array}{cc} 1 & 2 \\ 3 & 4 \end{array}\right]", True),
    (M22, r"\left(\begin{array}{cc} 1 & 2 \\ 3 & 4 \end{array}\right)", True),
    (M22, r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", True),
    (M22, r"\begin{bmatrix} 1 & 2 \\ 4 & 3 \end{bmatrix}", False),
    (M22, r"\left[\begin{array}{cc} 1 & 3 \\ 2 & 4 \end{array}\right]", False),
    (M22, r"\begin{pmatrix} 1 & 2 & 3 & 4 \end{pmatrix}", False),
    (M22, r"\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}", False),
    (r"\begin{pmatrix} 0.33 \\ 2 \end{pmatrix}", r"\begin{pmatrix} \frac{1}{3} \\ 2 \end{pmatrix}", True),
    (r"\begin{pmatrix} 0.33 \\ 2 \end{pmatrix}", r"\begin{pmatrix} \frac{1}{4} \\ 2 \end{pmatrix}", False),
    (r"\begin{pmatrix} 0.67 \\ -1 \end{pmatrix}", r"\begin{bmatrix} \dfrac{2}{3} \\ -1 \end{bmatrix}", True),
    (r"\begin{pmatrix} 0.67 \\ -1 \end{pmatrix}", r"\begin{bmatrix} \dfrac{2}{3} \\ 1 \end{bmatrix}", False),
    (
        r"\begin{pmatrix} x^{2/3} \\ 1 \end{pmatrix}",
        r"\begin{pmatrix} \sqrt[3]{x}^2 \\ 1 \end{pmatrix}",
        True,
    ),
    (r"\begin{pmatrix} x^{2/3} \\ 1 \end{pmatrix}", r"\begin{pmatrix} \sqrt{x}^3 \\ 1 \end{pmatrix}", False),
    (
        r"\begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{pmatrix}",
        r"\begin{bmatrix} \cos \theta & -\sin \theta \\ \sin \theta & \cos \theta \end{bmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} \cos\theta & -\sin\theta \\ \sin\theta & \cos\theta \end{pmatrix}",
        r"\begin{bmatrix} \cos \theta & \sin \theta \\ -\sin \theta & \cos \theta \end{bmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} 2 \\ -3 \\ 1 \end{pmatrix}",
        r"\left[\begin{array}{c} 2 \\ -3 \\ 1 \end{array}\right]",
        True,
    ),
    (r"\begin{pmatrix} 2 \\ -3 \\ 1 \end{pmatrix}", r"\begin{bmatrix} 2 \\ 3 \\ 1 \end{bmatrix}", False),
    (r"\begin{pmatrix} 2 \\ -3 \\ 1 \end{pmatrix}", r"\begin{pmatrix} 2 \\ -3 \end{pmatrix}", False),
    (
        r"\begin{pmatrix} \frac{1}{2} & 0 \\ 0 & 2 \end{pmatrix}",
        r"\begin{bmatrix} 0.5 & 0 \\ 0 & 2 \end{bmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} \frac{1}{2} & 0 \\ 0 & 2 \end{pmatrix}",
        r"\begin{bmatrix} 2 & 0 \\ 0 & 0.5 \end{bmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} 2 & 2 \\ 3 & 5 \end{pmatrix}",
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix} + \begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} 2 & 2 \\ 3 & 5 \end{pmatrix}",
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix} - \begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        False,
    ),
    (r"\begin{pmatrix} 6 \\ -4 \end{pmatrix}", r"2\begin{pmatrix} 3 \\ -2 \end{pmatrix}", True),
    (r"\begin{pmatrix} 6 \\ -4 \end{pmatrix}", r"2\begin{pmatrix} 3 \\ 2 \end{pmatrix}", False),
    (r"\begin{pmatrix} 6 \\ -4 \end{pmatrix}", r"\begin{pmatrix} 3 \\ -2 \end{pmatrix}", False),
    (
        r"\begin{pmatrix} 5 & 4 \\ 2 & 1 \end{pmatrix}",
        r"\begin{pmatrix} 2 & 1 \\ 1 & 0 \end{pmatrix}\begin{pmatrix} 2 & 1 \\ 1 & 1 \end{pmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} 5 & 3 \\ 2 & 1 \end{pmatrix}",
        r"\begin{pmatrix} 2 & 1 \\ 1 & 0 \end{pmatrix}\begin{pmatrix} 2 & 1 \\ 1 & 1 \end{pmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}",
        r"-\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} -1 & 0 \\ 0 & -1 \end{pmatrix}",
        r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} \sqrt{2} \\ \frac{\sqrt{2}}{2} \end{pmatrix}",
        r"\begin{bmatrix} \sqrt2 \\ \frac{1}{\sqrt{2}} \end{bmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} \sqrt{2} \\ \frac{\sqrt{2}}{2} \end{pmatrix}",
        r"\begin{bmatrix} \sqrt2 \\ \frac{1}{2} \end{bmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} 1 & -1 \\ 0 & 1 \end{pmatrix}",
        r"\begin{vmatrix} 1 & -1 \\ 0 & 1 \end{vmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} 4 \\ 0 \\ -1 \end{pmatrix}",
        r"\left(\begin{matrix} 4 \\ 0 \\ -1 \end{matrix}\right)",
        True,
    ),
    (
        r"\begin{pmatrix} 4 \\ 0 \\ -1 \end{pmatrix}",
        r"\left(\begin{matrix} 4 \\ -1 \\ 0 \end{matrix}\right)",
        False,
    ),
    (r"\begin{pmatrix} 1/4 & 3/4 \end{pmatrix}", r"\begin{bmatrix} 0.25 & 0.75 \end{bmatrix}", True),
    (r"\begin{pmatrix} 1/4 & 3/4 \end{pmatrix}", r"\begin{bmatrix} 0.75 & 0.25 \end{bmatrix}", False),
    (
        r"\begin{pmatrix} 2a & b \\ 0 & a+b \end{pmatrix}",
        r"\begin{bmatrix} a+a & b \\ 0 & b+a \end{bmatrix}",
        True,
    ),
    (
        r"\begin{pmatrix} 2a & b \\ 0 & a+b \end{pmatrix}",
        r"\begin{bmatrix} a^2 & b \\ 0 & b+a \end{bmatrix}",
        False,
    ),
    (
        r"\begin{pmatrix} 3 \\ 1 \end{pmatrix}",
        r"\begin{pmatrix} 1 & 1 \\ 0 & 1 \end{pmatrix} \begin{pmatrix} 2 \\ 1 \end{pmatrix}",
        True,
    ),
]

RELATIONS = [
    (r"x \geq 2", "x >= 2", True),
    (r"x \geq 2", r"x \ge 2", True),
    (r"x \geq 2", r"x \geqslant 2", True),
    (r"x \geq 2", "x > 2", False),
    (r"x \geq 2", "x >= 3", False),
    ("x < 1", r"x \lt 1", True),
    ("x < 1", r"-x > -1", True),
    ("x < 1", r"-x < -1", False),
    ("x < 1", r"1 > x", True),
    ("x < 1", r"x \leq 1", False),
    (r"x \neq 3", "x != 3", True),
    (r"x \neq 3", r"x \ne 3", True),
    (r"x \neq 3", r"x \neq -3", False),
    (r"x \neq 3", "x = 3", False),
    (r"x \le 4", r"-2x \ge -8", True),
    (r"x \le 4", r"-2x \le -8", False),
    (r"x > -3", r"-x < 3", True),
    (r"x > -3", r"-x > 3", False),
    (r"x \geq -\frac{1}{2}", r"-4x \le 2", True),
    (r"x \geq -\frac{1}{2}", r"4x \le -2", False),
    (r"x \in [-2, 7]", r"-2 \le x \le 7", True),
    (r"x \in [-2, 7]", r"-2 < x \le 7", False),
    ("[-2, 7]", r"-2 \leq x \leq 7", True),
    ("[-2, 7]", r"x \in [-2, 7)", False),
    (r"-2 \le x \le 7", r"x \in [-2,7]", True),
    (r"-2 \le x \le 7", r"[-2, 7]", True),
    (r"-2 \le x \le 7", r"(-2, 7]", False),
    (r"(-\infty, 5)", r"x < 5", True),
    (r"(-\infty, 5)", r"x \le 5", False),
    (r"(3, \infty)", r"x > 3", True),
    (r"(3, \infty)", r"x < 3", False),
    (r"x \geq 2", r"x \in [2, \infty)", True),
    (r"x \geq 2", r"x \in (2, \infty)", False),
    (r"3 < x < 5", r"5 > x > 3", True),
    (r"3 < x < 5", r"x \in (3,5)", True),
    (r"3 < x < 5", r"3 \leq x < 5", False),
    (r"x \le -1 \text{ or } x \ge 3", r"(-\infty,-1] \cup [3,\infty)", True),
    (r"x \le -1 \text{ or } x \ge 3", r"(-\infty,-1) \cup (3,\infty)", False),
    (r"x \geq 2", "2 <= x", True),
    (r"x \geq 2", "2 >= x", False),
]

CHAINS = [
    ("11", "x = 5+5+1 = 11", True),
    ("11", "x = 5+5+1 = 12", False),
    ("11", "5+5+1 = 11", True),
    ("11", "5 + 5 + 2 = 12", False),
    (r"\frac{1}{2}", r"P = \frac{3}{6} = \frac{1}{2}", True),
    (r"\frac{1}{2}", r"P = \frac{1}{2} = \frac{2}{6}", False),
    ("5", r"AB = \sqrt{9 + 16} = \sqrt{25} = 5", True),
    ("5", r"AB = \sqrt{9 + 16} = \sqrt{26}", False),
    ("25", "3^2 + 4^2 = 9 + 16 = 25", True),
    ("25", "3^2 + 4^2 = 9 + 16 = 24", False),
    ("0.5", r"\frac{1}{2} \cdot 1 = \frac{1}{2}", True),
    ("120", r"5! = 5 \cdot 4 \cdot 3 \cdot 2 \cdot 1 = 120", True),
    ("120", r"5! = 5 \cdot 4 \cdot 3 \cdot 2 = 100", False),
    (r"2\sqrt{3}", r"h = \sqrt{16 - 4} = \sqrt{12} = 2\sqrt{3}", True),
    (r"2\sqrt{3}", r"h = \sqrt{16 - 4} = \sqrt{12} = 3\sqrt{2}", False),
    ("36", r"S = 1 + 3 + 5 + \cdots + 11 = 6^2 = 36", True),
    ("36", r"S = 1 + 3 + 5 + \cdots + 11 = 6^2 = 35", False),
    ("16", "f(2) = 2^4 = 16", True),
    ("16", "f(2) = 2^4 = 8", False),
    (r"\frac{3}{4}", r"\cos\theta = \frac{6}{8} = \frac{3}{4}", True),
    (r"\frac{3}{4}", r"\cos\theta = \frac{6}{8} = \frac{4}{3}", False),
    ("7", "a_4 = a_3 + a_2 = 4 + 3 = 7", True),
    ("7", "a_4 = a_3 + a_2 = 4 + 3 = 8", False),
    ("1000", r"10^3 = 1000", True),
    ("1000", r"10^3 = 100", False),
    ("42", r"N = 6 \times 7 = 42", True),
    ("42", r"N = 6 \times 7 = 48", False),
    (r"\pi", r"A = \pi r^2 = \pi \cdot 1^2 = \pi", True),
    (r"\pi", r"A = \pi r^2 = \pi \cdot 2^2 = 4\pi", False),
    ("3", r"\log_2 8 = 3", True),
    ("3", r"\log_2 8 = 4", False),
    ("-4", "x = -2 - 2 = -4", True),
    ("-4", "x = -2 - 2 = 0", False),
    ("12", "d = 2r = 2 \\cdot 6 = 12", True),
    ("12", "d = 2r = 2 \\cdot 6 = 6", False),
]

SEVERAL = [
    (r"\{1, 2\}", r"1 \text{ or } 2", True),
    (r"\{1, 2\}", r"2 \text{ and } 1", True),
    (r"\{1, 2\}", r"1", False),
    (r"\{1, 2\}", r"1, 2, 3", False),
    ("(5,2),(7,2)", "p=5, q=2; p=7, q=2", True),
    ("(5,2),(7,2)", "p=7, q=2; p=5, q=2", True),
    ("(5,2),(7,2)", "p=5, q=2", False),
    ("(5,2),(7,2)", "p=2, q=5; p=2, q=7", False),
    ("(5,2),(7,2)", "(7,2); (5,2)", True),
    ("(5,2),(7,2)", "(7,2), (5,2)", True),
    ("(5,2),(7,2)", "(2,7), (2,5)", False),
    (r"W(x)=1 \text{ and } W(x)=-1", r"W(x)=1 \text{ or } W(x)=-1", True),
    (r"W(x)=1 \text{ and } W(x)=-1", r"W(x)=-1 \text{ or } W(x)=1", True),
    (r"W(x)=1 \text{ and } W(x)=-1", r"W(x)=1", False),
    (r"W(x)=1 \text{ and } W(x)=-1", r"W(x)=1 \text{ or } W(x)=0", False),
    ("-3, 1", r"x = 1 \text{ or } x = -3", True),
    ("-3, 1", r"x = -3, \ x = 1", True),
    ("-3, 1", r"x = 1", False),
    ("-3, 1", r"x = 3 \text{ or } x = -1", False),
    (r"\{(1,2), (2,1), (3,3)\}", r"(3,3), (2,1), (1,2)", True),
    (r"\{(1,2), (2,1), (3,3)\}", r"(1,2), (2,1)", False),
    (r"\{(1,2), (2,1), (3,3)\}", r"(1,2); (2,1); (3,3)", True),
    (r"\{(1,2), (2,1), (3,3)\}", r"(1,2); (1,2); (3,3)", False),
    ("2, 3, 5, 7", r"2, 3, 5 \text{ and } 7", True),
    ("2, 3, 5, 7", r"7, 5, 3, 2", True),
    ("2, 3, 5, 7", r"2, 3, 5", False),
    ("2, 3, 5, 7", r"2, 3, 5, 7, 11", False),
    (r"\frac{1}{2}, -\frac{1}{2}", r"\pm \frac{1}{2}", True),
    (r"\frac{1}{2}, -\frac{1}{2}", r"\frac{1}{2}", False),
    ("(0,0),(1,1)", r"(x,y) = (1,1) \text{ or } (x,y) = (0,0)", True),
    ("(0,0),(1,1)", r"(x,y) = (1,1)", False),
    (r"1, 4, 9", r"n=1, n=4, n=9", True),
    (r"1, 4, 9", r"n=1, n=4", False),
    ("x=2, y=3", "x=2, y=3", True),
    ("x=2, y=3", "y=3, x=2", True),
    ("x=2, y=3", "x=3, y=2", False),
]

THOUSANDS = [
    ("11111", r"11,\! 111", True),
    ("11111", r"11,\!111", True),
    ("11111", r"11,\! 112", False),
    ("10000", "10{,}000", True),
    ("10000", "10{,}001", False),
    ("10000", r"10\,000", True),
    ("10000", r"10\;000", True),
    ("10000", r"1\,000", False),
    ("1000000", "1,000,000", True),
    ("1000000", "1{,}000{,}000", True),
    ("1000000", r"1,\!000,\!000", True),
    ("1000000", "1,000,001", False),
    ("1000000", "100,000", False),
    ("2500", r"\$2,\!500", True),
    ("2500", r"\$2{,}500", True),
    ("2500", r"\$2,\!400", False),
    ("2500", r"2,500 \text{ dollars}", True),
    ("2500", r"2,505", False),
    ("123456", r"123{,}456", True),
    ("123456", r"123,\!465", False),
    ("12345", "12,345", True),
    ("12345", "12,354", False),
    ("1.222", "1,222", False),
    ("1222", "1,222", True),
    ("4096", r"4\,096", True),
    ("4096", r"4\,069", False),
    ("1001", r"1,\!001", True),
    ("1001", r"1,\!010", False),
    ("65536", r"65{,}536", True),
    ("65536", r"65{,}535", False),
    ("3000.5", r"3,\!000.5", True),
    ("3000.5", r"3,\!000.6", False),
]

DECIMAL_COMMA = [
    ("1.22", "1,22", True),
    ("1.22", "1,23", False),
    ("1.22", "1, 22", False),
    ("0.5", "0,5", True),
    (r"\frac{1}{2}", "0,5", True),
    (r"\frac{1}{2}", "0,6", False),
    ("3.14", "3,14", True),
    ("3.14", "3,41", False),
    (r"\frac{5}{2}", "2,5", True),
    (r"\frac{5}{2}", "2,25", False),
    ("-1.75", "-1,75", True),
    ("-1.75", "1,75", False),
    ("0.125", "0,125", True),
    ("0.125", "0,215", False),
    ("12.5", "12,5", True),
    ("12.5", "12,05", False),
    (r"\{1, 5\}", "1,5", True),
    ("1.5", "1,5,7", False),
    ("1.5", r"1,5 \text{ cm}", True),
    ("2.75", r"\text{2,75}", True),
    ("2.75", r"\text{2,57}", False),
    ("1.5", r"\text{La respuesta es } 1,5", True),
    ("1.5", r"\text{La respuesta es } 2,5", False),
    ("18", r"\text{Elle gagne } \$18 \text{ par jour}", True),
    ("18", r"\text{Elle gagne } \$19 \text{ par jour}", False),
    ("25", r"\text{Il costo è di } \$25", True),
    ("25", r"\text{Il costo è di } \$52", False),
    ("40", r"\text{Sie zahlt } \$40 \text{ für alles}", True),
    ("40", r"\text{Sie zahlt } \$44 \text{ für alles}", False),
    ("7.5", r"\text{Ela gasta } \$7,50", True),
    ("7.5", r"\text{Ela gasta } \$7,05", False),
    ("0.75", "0,75", True),
    ("0.75", "0,57", False),
]

WORDS_UNITS = [
    (r"\text{odd}", "odd", True),
    ("odd", r"\text{odd}", True),
    (r"\text{odd}", r"\text{even}", False),
    ("odd", r"\textbf{odd}", True),
    ("odd", r"\text{neither}", False),
    ("5", r"5 \textbf{ meters}", True),
    ("5", r"5\textbf{ meters}", True),
    ("5", r"6 \textbf{ meters}", False),
    ("12", r"12 \text{ square units}", True),
    ("12", r"12 \mathrm{~cm}^2", True),
    ("12", r"21 \text{ cm}^2", False),
    ("28\\%", "28 percent", True),
    ("28\\%", r"28 \text{ percent}", True),
    ("28\\%", "28 pct", True),
    ("28\\%", "28 percentage", True),
    ("28\\%", r"28 \text{ percentage points}", True),
    ("28\\%", "27 percent", False),
    ("28\\%", r"82 \text{ pct}", False),
    ("28\\%", r"28 \%", True),
    ("28\\%", r"29 \%", False),
    ("28", r"28 \%", True),
    ("28", r"28\text{\%}", True),
    ("28", r"2.8 \%", False),
    ("60", r"60 \text{ km/h}", True),
    ("60", r"60 \, \mathrm{km}/\mathrm{h}", True),
    ("60", r"66 \text{ km/h}", False),
    ("3", r"3 \text{ hours}", True),
    ("3", r"\textbf{3 hours}", True),
    ("3", r"\textit{4 hours}", False),
    (r"\text{yes}", r"\textbf{Yes}", True),
    (r"\text{yes}", r"\text{no}", False),
    ("45", r"45^\circ \text{ degrees}", True),
    ("45", r"54^\circ", False),
    (r"\text{Tuesday}", r"\text{tuesday}", True),
    (r"\text{Tuesday}", r"\text{Thursday}", False),
]

INTERVAL_DECIMALS = [
    (r"(\frac{3}{5}, \frac{8}{3}]", r"(0.6, 2.6667]", True),
    (r"(\frac{3}{5}, \frac{8}{3}]", r"(0.6, 2.6667)", False),
    (r"(\frac{3}{5}, \frac{8}{3}]", r"[0.6, 2.6667]", False),
    (r"(\frac{3}{5}, \frac{8}{3}]", r"(0.6, 2.6666]", False),
    (r"(\frac{3}{5}, \frac{8}{3}]", r"(0.6, 2.6]", False),
    (r"(\frac{3}{5}, \frac{8}{3}]", r"\left(\frac{3}{5}, \frac{8}{3}\right]", True),
    (r"(0.6, 2.6667]", r"(\frac{3}{5}, \frac{8}{3}]", True),
    (r"(0.6, 2.6667]", r"[\frac{3}{5}, \frac{8}{3}]", False),
    (r"[\frac{1}{3}, 2)", r"[0.3333, 2)", True),
    (r"[\frac{1}{3}, 2)", r"(0.3333, 2)", False),
    (r"[\frac{1}{3}, 2)", r"[0.3334, 2)", False),
    (r"[\frac{1}{3}, 2)", r"[0.3333, 2]", False),
    (r"(-\infty, \frac{7}{4}]", r"(-\infty, 1.75]", True),
    (r"(-\infty, \frac{7}{4}]", r"(-\infty, 1.75)", False),
    (r"(-\infty, \frac{7}{4}]", r"(-\infty, 1.57]", False),
    (r"[\sqrt{2}, 3)", r"[1.4142, 3)", True),
    (r"[\sqrt{2}, 3)", r"(1.4142, 3)", False),
    (r"[\sqrt{2}, 3)", r"[1.4143, 3)", False),
    (r"(\frac{1}{7}, 1]", r"(0.142857, 1]", True),
    (r"(\frac{1}{7}, 1]", r"(0.142857, 1)", False),
    (r"(\frac{1}{7}, 1]", r"(0.14, 1]", False),
    (r"[-\frac{5}{3}, \infty)", r"[-1.6667, +\infty)", True),
    (r"[-\frac{5}{3}, \infty)", r"(-1.6667, +\infty)", False),
    (r"[-\frac{5}{3}, \infty)", r"[1.6667, +\infty)", False),
    (r"(-\frac{1}{2}, \frac{3}{4})", r"(-0.5, 0.75)", True),
    (r"(-\frac{1}{2}, \frac{3}{4})", r"[-0.5, 0.75)", False),
    (r"(-\frac{1}{2}, \frac{3}{4})", r"(-0.5, 0.57)", False),
    (r"(0, \pi]", r"(0, 3.1416]", True),
    (r"(0, \pi]", r"(0, 3.14159]", True),
    (r"(0, \pi]", r"[0, 3.1416]", False),
    (r"(0, \pi]", r"(0, 3.1415]", False),
    (r"[2, \frac{10}{3}]", r"[2, 3.3333]", True),
    (r"[2, \frac{10}{3}]", r"[2, 3.3333)", False),
    (r"(2, \frac{10}{3})", r"(2, 3.3333)", False),  # may be a point: its coordinates are not rounded
]


def _pairs(rows: list[tuple[str, str, bool]], category: str, topic: str, rng: random.Random) -> list[dict]:
    return [
        {"category": category, "gold": gold, "response": _carry(rng, _reasoning(rng, topic), answer)}
        | {"label": label}
        for gold, answer, label in rows
    ]


# ---------------------------------------------------------------------------------------------------------
# Whole responses (carriers) and whole gold solutions
# ---------------------------------------------------------------------------------------------------------

CARRIER_ANSWERS = [
    (r"\frac{1}{2}", r"\frac{1}{2}", r"\frac{1}{3}"),
    ("(1,2)", "(1, 2)", "(2, 1)"),
    ("18", "18", "17"),
    (r"2\sqrt{3}", r"2\sqrt3", r"3\sqrt2"),
    (r"x^2+1", r"x^2 + 1", r"x^2 - 1"),
    (r"\text{odd}", r"\text{odd}", r"\text{even}"),
    (r"[-1, 3)", r"[-1, 3)", r"[-1, 3]"),
    (
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}",
        r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}",
    ),
    ("0.75", r"\frac{3}{4}", r"\frac{4}{3}"),
    ("120", "120", "121"),
]


def _carrier_responses(rng: random.Random, answer: str, decoy: str) -> list[str]:
    """One answer in each carrier that is not a box; ``decoy`` appears in the reasoning as a tentative value."""
    work = _reasoning(rng, f"A first attempt gave ${decoy}$, which fails the check, so let me redo it.")
    return [
        f"{work}\nFinal Answer: The final answer is ${answer}$. I hope it is correct.",
        f"{work}\n\nFinal Answer: The final answer is ${answer}$.",
        f"{work}\n\nAnswer\n\\[ {answer} \\]",
        f"{work}\n\n**Answer:**\n$$ {answer} $$",
        f"{work}\n\n### Final Answer\n\\[\n{answer}\n\\]",
        f"{work}\n\nPutting everything together, the answer is \\( {answer} \\).",
        f"{work}\n\nThe final answer is \\({answer}\\)",
    ]


def _carriers(rng: random.Random) -> list[dict]:
    rows = []
    for gold, right, wrong in CARRIER_ANSWERS:
        for i, response in enumerate(_carrier_responses(rng, right, wrong)):
            rows.append({"category": "carriers", "gold": gold, "response": response, "label": True})
            if i % 2 == 0:  # the carrier holding a wrong answer after reasoning that mentions the gold
                wrong_response = _carrier_responses(rng, wrong, right)[i]
                rows.append(
                    {"category": "carriers", "gold": gold, "response": wrong_response, "label": False}
                )
    return rows


GOLD_SOLUTIONS = [
    (
        "We have $2+3=5$ apples in the first basket and $7$ in the second, so the total is $5+7=12$.\n"
        "So the answer is: \\[ \\boxed{12} \\]",
        ("12", "5"),
    ),
    (
        "Let $x$ be the width. Then $x(x+3)=40$, so $x^2+3x-40=0$ and $(x+8)(x-5)=0$. "
        "Since a width is positive, $x=5$ and the length is $8$.\n\nTherefore the area is $\\boxed{40}$.",
        ("40", "5"),
    ),
    (
        "The roots of $x^2-5x+6=0$ are $x=2$ and $x=3$, so the solutions are $\\boxed{2}$ and $\\boxed{3}$.",
        ("2, 3", "2"),
    ),
    (
        "Squaring both sides gives $x+1=9$, hence $x=8$. Checking, $\\sqrt{8+1}=3$.\n"
        "So the answer is: \\[ \\boxed{x = 8} \\]",
        ("8", "9"),
    ),
    (
        "By the Pythagorean theorem, $AB=\\sqrt{3^2+4^2}=5$, and the perimeter is $3+4+5=12$.\n#### 12",
        ("12", "5"),
    ),
    (
        "Multiplying the matrices row by column,\n"
        "\\[ \\boxed{\\begin{pmatrix} 5 & 3 \\\\ 2 & 1 \\end{pmatrix}} \\]",
        (r"\begin{bmatrix} 5 & 3 \\ 2 & 1 \end{bmatrix}", r"\begin{bmatrix} 5 & 2 \\ 3 & 1 \end{bmatrix}"),
    ),
    (
        "The inequality $2x-1>5$ gives $2x>6$, so $x>3$.\nSo the answer is: \\[ \\boxed{(3, \\infty)} \\]",
        ("x > 3", "x < 3"),
    ),
    (
        "Solving the system, $p=5, q=2$ or $p=7, q=2$.\n\nThe final answer is $\\boxed{(5,2),(7,2)}$",
        ("(7,2), (5,2)", "(5,2)"),
    ),
    (
        "The probability is $\\frac{3}{6}$, which simplifies to $\\frac{1}{2}$.\n"
        "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
        ("0.5", r"\frac{3}{5}"),
    ),
    (
        "Each of the $4$ friends pays $\\$2{,}500 / 4 = \\$625$.\n\nSo the answer is $\\boxed{\\$625}$.",
        ("625", "2500"),
    ),
    (
        "The function satisfies $f(-x)=-f(x)$ for every $x$, so it is $\\boxed{\\text{odd}}$.",
        ("odd", "even"),
    ),
    (
        "<think>\nThe sum is $1+2+\\cdots+10=55$.\n</think>\nThe sum of the first ten integers is $\\boxed{55}$.",
        ("55", "10"),
    ),
    (
        "Completing the square, $(x-2)^2+(y+1)^2=9$, so the centre is $(2,-1)$ and the radius is "
        "$\\boxed{3}$.",
        ("3", "9"),
    ),
    (
        "The discriminant is $b^2-4ac = 16-12 = 4 > 0$, so there are two roots, "
        "$x = \\frac{-4 \\pm 2}{2}$, that is $\\boxed{-1, -3}$.",
        (r"-3 \text{ and } -1", "-1"),
    ),
    (
        "We need $3x + 2 \\le 11$, i.e. $x \\le 3$, and $x \\ge -1$ from the second condition.\n"
        "So the answer is: \\[ \\boxed{[-1, 3]} \\]",
        (r"-1 \le x \le 3", r"-1 < x \le 3"),
    ),
    (
        "The average speed is $\\frac{120}{2} = 60$ km/h, so the answer is $\\boxed{60 \\text{ km/h}}$.",
        ("60", "120"),
    ),
]


def _gold_solutions(rng: random.Random) -> list[dict]:
    """Each gold solution against a right answer (in two carriers) and a value from inside the solution."""
    rows = []
    for solution, (right, wrong) in GOLD_SOLUTIONS:
        for answer, label in ((right, True), (wrong, False)):
            response = _carry(rng, _reasoning(rng, "The key step is to set up the right equation."), answer)
            rows.append({"category": "gold-solution", "gold": solution, "response": response, "label": label})
        response = _carry(rng, _reasoning(rng, "Let me compute it once more to be sure."), right)
        rows.append({"category": "gold-solution", "gold": solution, "response": response, "label": True})
    return rows


# ---------------------------------------------------------------------------------------------------------
# Held out: written after the rules above, as a check of them (63 of 67 passed then; the four misses -
# labelled boxes "$x=\\boxed{1}$ and $x=\\boxed{2}$", a matrix sum read as one matrix, "0, \\pm 1",
# "2,5 \\text{ m}" - were fixed after). The second batch (from "second batch" below) was written after those
# fixes: 41 of 42 passed; its miss, \\frac{\\sqrt{3}}{2} for a gold of 0.87 in a vector, was fixed after.
# ---------------------------------------------------------------------------------------------------------

_HELD_OUT_REASONING = "\n\n".join(
    [
        "We begin by writing down what is known: the sum is $12$ and the product is $35$.",
        "Then $a + b = 12$ gives $b = 12 - a$; substituting, $a(12-a) = 35$, so $a^2 - 12a + 35 = 0$.",
        "Hmm, I first got $a = 6$, but that gives $36$, not $35$. Let me redo it.",
        "Factoring, $(a-5)(a-7) = 0$, so the values are $5$ and $7$.",
        "Checking: $5 + 7 = 12$ and $5 \\cdot 7 = 35$, so both conditions hold and nothing was lost.",
        "The question, however, asks for a different quantity built from these, so let me compute it.",
    ]
)
HELD_OUT_RESPONSES = [
    ("carriers", "3.5", _HELD_OUT_REASONING + "\n\n**Final Answer:** $\\frac{7}{2}$", True),
    ("carriers", "42", _HELD_OUT_REASONING + "\n\nAnswer: \\( 42 \\)", True),
    (
        "carriers",
        "7",
        _HELD_OUT_REASONING + "\nThe final answer is $\\boxed{7}$. I hope it is correct.",
        True,
    ),
    ("carriers", "-0.25", _HELD_OUT_REASONING + "\n\n## Answer\n\n$$\n-\\frac{1}{4}\n$$", True),
    ("carriers", "12", _HELD_OUT_REASONING + "\n\nAnswer\n\\[ 13 \\]\n\nThis completes the solution.", False),
    (
        "carriers",
        "8",
        _HELD_OUT_REASONING + "\nFinal Answer: The final answer is $6$. I hope it is correct.",
        False,
    ),
    ("carriers", "4", _HELD_OUT_REASONING + "\n\nFinal Answer\n\n\\[ x = 4 \\]", True),
    ("carriers", "4", _HELD_OUT_REASONING + "\n\nFinal Answer\n\n\\[ x = 5 \\]", False),
    (
        "several-answers",
        "1, 2",
        _HELD_OUT_REASONING + "\n\nSo the solutions are $x=\\boxed{1}$ and $x=\\boxed{2}$.",
        True,
    ),
    (
        "several-answers",
        "1, 2",
        _HELD_OUT_REASONING + "\n\nSo the solutions are $x=\\boxed{1}$ and $x=\\boxed{3}$.",
        False,
    ),
    # second batch
    ("carriers", "0.5", _HELD_OUT_REASONING + "\n\n**Answer**: $\\frac{1}{2}$", True),
    ("carriers", "12", _HELD_OUT_REASONING + "\n\nANSWER: 12", True),
    ("carriers", "7", _HELD_OUT_REASONING + "\n\nFinal answer: 7", True),
    ("carriers", "7", _HELD_OUT_REASONING + "\n\nFinal answer: 8", False),
    (
        "carriers",
        "(2,\\frac13)",
        _HELD_OUT_REASONING + "\n\nTherefore, the answer is $\\left( 2, \\frac{1}{3} \\right)$.",
        True,
    ),
    (
        "several-answers",
        "\\pm 3",
        _HELD_OUT_REASONING + "\n\nThe solutions are $\\boxed{3}, \\boxed{-3}$.",
        True,
    ),
    (
        "several-answers",
        "\\pm 3",
        _HELD_OUT_REASONING + "\n\nThe solutions are $\\boxed{3}$ and $\\boxed{3}$.",
        False,
    ),
]

HELD_OUT_GOLD_SOLUTIONS = [
    ("We have $2x = 9$.\nSo the answer is: \\[ \\boxed{\\frac{9}{2}} \\]", ("4.5", "9")),
    (
        "The total is $4 \\cdot 6 = 24$, half of which is $12$.\n"
        "Final Answer: The final answer is $24$. I hope it is correct.",
        ("24", "12"),
    ),
    ("Since $f(-x) = f(x)$ the function is even.\nSo the answer is: $\\boxed{\\text{(B)}}$", ("B", "C")),
]
HELD_OUT_PAIRS = [
    (
        "matrices",
        r"\begin{pmatrix} -2 \\ 5 \end{pmatrix}",
        r"\left[ \begin{matrix} -2 \\ 5 \end{matrix} \right]",
        True,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}",
        r"\begin{bmatrix}1&0\\0&-1\end{bmatrix}",
        False,
    ),
    (
        "matrices",
        r"\begin{pmatrix} \frac{3}{5} & \frac{4}{5} \end{pmatrix}",
        r"\begin{bmatrix} 0.6 & 0.8 \end{bmatrix}",
        True,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 2 & 0 \\ 0 & 2 \end{pmatrix}",
        r"2\begin{pmatrix}1&0\\0&1\end{pmatrix}",
        True,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 7 \\ 8 \end{pmatrix}",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix} + 3\begin{pmatrix} 2 \\ 2 \end{pmatrix}",
        True,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 7 \\ 8 \end{pmatrix}",
        r"\begin{pmatrix} 1 \\ 2 \end{pmatrix} + 2\begin{pmatrix} 2 \\ 2 \end{pmatrix}",
        False,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 0 & 1 \\ 1 & 0 \end{pmatrix}",
        r"\begin{pmatrix} 0 & 1 \\ 1 & 0 \end{pmatrix}^2",
        False,
    ),
    ("relations", r"x \ge -1", "x ≥ -1", True),
    ("relations", "x < 4", "3x < 12", True),
    ("relations", "x < 4", "3x > 12", False),
    ("relations", "x > 2", "-3x + 6 < 0", True),
    ("relations", r"x \leq \frac{5}{2}", r"2x \leq 5", True),
    ("relations", r"x \leq \frac{5}{2}", r"2x \geq 5", False),
    ("relations", "[1, 4]", "1 <= x <= 4", True),
    ("relations", "[1, 4]", "1 < x <= 4", False),
    ("relations", r"x \neq 0", "x != 0", True),
    ("relations", "a > 1", r"a \gt 1", True),
    ("relations", r"(-\infty, -2)", "-x > 2", True),
    ("relations", r"(-\infty, -2)", "x > -2", False),
    ("chained-equalities", "10", "x = 2 + 8 = 10", True),
    ("chained-equalities", "10", "x = 2 + 8 = 11", False),
    (
        "chained-equalities",
        r"\frac{\sqrt{2}}{2}",
        r"\sin 45^\circ = \frac{1}{\sqrt{2}} = \frac{\sqrt{2}}{2}",
        True,
    ),
    ("chained-equalities", "64", "2^6 = 64", True),
    ("chained-equalities", "9", r"|AB| = \sqrt{81} = 9", True),
    ("chained-equalities", "9", r"|AB| = \sqrt{81} = 8", False),
    ("several-answers", r"\{2, -2\}", r"x = 2 \text{ or } x = -2", True),
    ("several-answers", "(1,3),(3,1)", r"(3,1) \text{ and } (1,3)", True),
    ("several-answers", "(1,3),(3,1)", "(1,3)", False),
    ("several-answers", "a=1, b=2; a=2, b=1", "(2,1), (1,2)", True),
    ("several-answers", "3, 5", "5; 3", True),
    ("several-answers", "-1, 0, 1", r"0, \pm 1", True),
    ("thousands", "1234567", "1,234,567", True),
    ("thousands", "1234567", "1{,}234{,}576", False),
    ("thousands", "5000", r"\$5,\!000", True),
    ("thousands", "20000", r"20\,000 \text{ people}", True),
    ("thousands", "1.5", "1,500", False),
    ("decimal-comma", "2.5", r"2,5 \text{ m}", True),
    ("decimal-comma", "0.05", "0,05", True),
    ("decimal-comma", "3.75", r"\text{Respuesta: } 3,75", True),
    ("decimal-comma", "15", r"\text{Der Preis beträgt } 15 \text{ Euro}", True),
    ("decimal-comma", "15", r"\text{Der Preis beträgt } 16 \text{ Euro}", False),
    ("words-units", r"\text{even}", r"\textbf{even}", True),
    ("words-units", "50", r"50\text{ percent}", True),
    ("words-units", r"12\%", r"12 \text{ percent}", True),
    ("words-units", r"12\%", r"21 \text{ percent}", False),
    ("words-units", "7", r"7 \textit{ days}", True),
    ("words-units", "100", r"100 \mathrm{cm}", True),
    ("words-units", r"\text{B}", r"\textbf{(B)}", True),
    ("interval-decimals", r"[\frac{2}{3}, 5)", "[0.6667, 5)", True),
    ("interval-decimals", r"[\frac{2}{3}, 5)", "[0.667, 5)", False),
    ("interval-decimals", r"(-\infty, \frac{\sqrt{3}}{2}]", r"(-\infty, 0.8660]", True),
    ("interval-decimals", r"(1.25, 2]", r"(\frac{5}{4}, 2]", True),
    ("interval-decimals", r"(1.25, 2]", r"[\frac{5}{4}, 2]", False),
    # second batch
    ("relations", r"[3, +\infty)", r"x \geqslant 3", True),
    ("relations", r"(-\infty,-2)", "y<-2", True),
    ("relations", r"x > 1", r"x \ge 1", False),
    ("relations", r"(-3, 2]", r"-3 < x \leq 2", True),
    ("relations", r"k \le 0", r"k \in (-\infty, 0]", True),
    ("relations", r"x \leq 5", r"x \lt 5", False),
    ("relations", r"x \in (1, 4)", "1 < x < 4", True),
    ("relations", r"x \in (1, 4)", r"1 < x \le 4", False),
    ("relations", "-x > -1", "x<1", True),
    ("several-answers", r"\{2, 5\}", r"x=2 \text{ and } x=5", True),
    ("several-answers", r"\{(2,1),(1,2)\}", "(1,2), (2,1)", True),
    ("several-answers", r"\{(2,1),(1,2)\}", "(1,2)", False),
    ("several-answers", r"19, 46, \text{ and } 82", "19, 46, and 82", True),
    ("several-answers", r"19, 46, \text{ and } 82", "19, 46, and 28", False),
    ("thousands", "1250", r"\$1{,}250", True),
    ("thousands", "2016", r"2,\!016", True),
    ("thousands", "2016", r"2,\!061", False),
    ("decimal-comma", r"\frac{7}{2}", "3,5", True),
    ("decimal-comma", "1", "1,000", False),
    ("matrices", r"\begin{pmatrix} 2 & -1 \end{pmatrix}", r"\begin{bmatrix} 2 & -1 \end{bmatrix}", True),
    (
        "matrices",
        r"\begin{pmatrix} \frac{1}{2} \\ \frac{\sqrt{3}}{2} \end{pmatrix}",
        r"\begin{pmatrix} 0.5 \\ 0.866 \end{pmatrix}",
        False,
    ),
    (
        "matrices",
        r"\begin{pmatrix} 0.5 \\ 0.87 \end{pmatrix}",
        r"\begin{pmatrix} \frac{1}{2} \\ \frac{\sqrt{3}}{2} \end{pmatrix}",
        True,
    ),
    ("words-units", "5", r"\text{5 cm}", True),
    ("words-units", "5", r"5\,\text{cm}", True),
    ("words-units", "5", r"\$5.00", True),
    ("words-units", "0.45", r"45\%", True),
    ("words-units", "0.45", r"54\%", False),
    ("words-units", "10", r"10 \text{ meters per second}", True),
    ("words-units", r"\text{(B)}", r"\textbf{(B) } 12", True),
    ("words-units", r"\text{(B)}", r"\textbf{(C) } 12", False),
    ("chained-equalities", "4", "f(3) = 9 - 6 + 1 = 4", True),
    ("chained-equalities", "5", "f(3) = 9 - 6 + 1 = 4", False),
    ("chained-equalities", r"3\sqrt{2}", r"\sqrt{18} = 3\sqrt{2}", True),
    ("chained-equalities", "3", "x=3", True),
]


def _held_out(rng: random.Random) -> list[dict]:
    rows = [
        {"category": category, "gold": gold, "response": response, "label": label}
        for category, gold, response, label in HELD_OUT_RESPONSES
    ]
    for solution, (right, wrong) in HELD_OUT_GOLD_SOLUTIONS:
        for answer, label in ((right, True), (wrong, False)):
            response = _carry(rng, _reasoning(rng, "Solve for the unknown first."), answer)
            rows.append({"category": "gold-solution", "gold": solution, "response": response, "label": label})
    for category, gold, answer, label in HELD_OUT_PAIRS:
        response = _carry(rng, _reasoning(rng, "Now compute the final value."), answer)
        rows.append({"category": category, "gold": gold, "response": response, "label": label})
    return rows


def build_suite(seed: int = SEED) -> list[dict]:
    """Every pair of every category as ``{category, gold, response, label}``, in a fixed order."""
    rng = random.Random(seed)
    rows = _carriers(rng)
    for rows_, category, topic in (
        (
            MATRICES,
            "matrices",
            "Multiplying row by column, the top-left entry is $1 \\cdot 2 + 2 \\cdot 0 = 2$.",
        ),
        (
            RELATIONS,
            "relations",
            "Moving every term to one side, the sign of the coefficient decides the direction.",
        ),
        (CHAINS, "chained-equalities", "Now we put the pieces together in one line of computation."),
        (SEVERAL, "several-answers", "Both cases give valid solutions, so we keep every one of them."),
        (THOUSANDS, "thousands", "The total is large, so I will write it with separators to read it easily."),
        (DECIMAL_COMMA, "decimal-comma", "The amount is not a whole number, so we keep the decimal part."),
        (WORDS_UNITS, "words-units", "The question asks for the quantity with its unit, so I will state it."),
        (INTERVAL_DECIMALS, "interval-decimals", "The endpoints are not integers, so I approximate them."),
    ):
        rows += _pairs(rows_, category, topic, rng)
    rows += _gold_solutions(rng)
    return rows + _held_out(rng)

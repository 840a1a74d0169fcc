r"""The project's own GSM-style dataset, so the default job runs offline with nothing downloaded.

Short multi-step arithmetic word problems (shopping, rates, ages, sharing, savings, travel; 2-4
operations) with varied names, items and numbers, each with a step-by-step solution ending in
``The final answer is $\boxed{N}$.`` and an exact integer answer below 1000. Generation is a seeded
stream, so ``synthetic_problems(split, 128, seed)`` is the first 128 of ``synthetic_problems(split,
256, seed)``. Train and test come from different templates (``TRAIN_TEMPLATES`` / ``TEST_TEMPLATES``):
a test problem is never an instance of a template seen in training, and the two share no 13-gram, so a
gain on test is a gain on problems of a new kind, not the same sentences with other numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from mathsft.data.schema import Problem
from mathsft.errors import MathsftError

MAX_ANSWER = 999

NAMES = {
    "she": ["Ava", "Mia", "Lena", "Sofia", "Priya", "Emma", "Zara", "Nora", "Hana", "Lucy", "Maya", "Rosa"],
    "he": ["Liam", "Omar", "Ben", "Kenji", "Mateo", "Noah", "Ravi", "Tom", "Leo", "Sam", "Ivan", "Yusuf"],
}
ITEMS = [
    "apples",
    "pencils",
    "stickers",
    "marbles",
    "cookies",
    "books",
    "cards",
    "balloons",
    "oranges",
    "shells",
]
SHOP_ITEMS = [
    "notebooks",
    "pens",
    "mugs",
    "toy cars",
    "plants",
    "shirts",
    "candles",
    "puzzles",
    "caps",
    "bowls",
]
MACHINES = [
    ("printer", "pages"),
    ("machine", "bottles"),
    ("baker", "rolls"),
    ("robot", "boxes"),
    ("loom", "scarves"),
]
VEHICLES = ["car", "bus", "train", "truck", "boat"]
THINGS = ["bike", "game", "jacket", "lamp", "radio"]

Generated = tuple[str, list[str], int]


def _person(rng: random.Random) -> tuple[str, str]:
    pronoun = rng.choice(["she", "he"])
    return rng.choice(NAMES[pronoun]), pronoun


def _two_people(rng: random.Random) -> tuple[str, str]:
    first, _ = _person(rng)
    second = first
    while second == first:
        second, _ = _person(rng)
    return first, second


def shopping_change(rng: random.Random) -> Generated:
    name, he = _person(rng)
    n, price = rng.randint(2, 9), rng.randint(2, 15)
    cost = n * price
    bill = next(b for b in (20, 50, 100, 200) if b > cost)
    question = f"{name} buys {n} {rng.choice(SHOP_ITEMS)} for ${price} each and pays with a ${bill} bill. How much change does {he} get?"
    steps = [f"{name} spends {n} * {price} = ${cost}.", f"The change is {bill} - {cost} = ${bill - cost}."]
    return question, steps, bill - cost


def shopping_total(rng: random.Random) -> Generated:
    name, he = _person(rng)
    item1, item2 = rng.sample(SHOP_ITEMS, 2)
    a, p1, b, p2 = rng.randint(2, 9), rng.randint(2, 20), rng.randint(2, 9), rng.randint(2, 20)
    x, y = a * p1, b * p2
    question = f"{name} buys {a} {item1} at ${p1} each and {b} {item2} at ${p2} each. How much does {he} spend in total?"
    steps = [
        f"The {item1} cost {a} * {p1} = ${x}.",
        f"The {item2} cost {b} * {p2} = ${y}.",
        f"In total {name} spends {x} + {y} = ${x + y}.",
    ]
    return question, steps, x + y


def machines_rate(rng: random.Random) -> Generated:
    machine, things = rng.choice(MACHINES)
    rate, count, hours = rng.randint(3, 20), rng.randint(2, 6), rng.randint(2, 8)
    per_hour = rate * count
    question = f"One {machine} makes {rate} {things} per hour. How many {things} do {count} {machine}s make in {hours} hours?"
    steps = [
        f"Together they make {rate} * {count} = {per_hour} {things} per hour.",
        f"In {hours} hours they make {per_hour} * {hours} = {per_hour * hours} {things}.",
    ]
    return question, steps, per_hour * hours


def pages_left(rng: random.Random) -> Generated:
    name, he = _person(rng)
    per_day, days = rng.randint(5, 30), rng.randint(2, 9)
    read = per_day * days
    total = read + rng.randint(5, 200)
    question = f"{name}'s book has {total} pages. {he.capitalize()} reads {per_day} pages a day for {days} days. How many pages are left?"
    steps = [
        f"{name} reads {per_day} * {days} = {read} pages.",
        f"There are {total} - {read} = {total - read} pages left.",
    ]
    return question, steps, total - read


def ages_times(rng: random.Random) -> Generated:
    first, second = _two_people(rng)
    age, times, years = rng.randint(3, 15), rng.randint(2, 5), rng.randint(2, 20)
    now = age * times
    question = f"{first} is {age} years old. {second} is {times} times as old as {first}. How old will {second} be in {years} years?"
    steps = [
        f"{second} is {age} * {times} = {now} years old now.",
        f"In {years} years {second} will be {now} + {years} = {now + years}.",
    ]
    return question, steps, now + years


def ages_sum(rng: random.Random) -> Generated:
    first, second = _two_people(rng)
    age, older, years = rng.randint(4, 40), rng.randint(2, 30), rng.randint(2, 15)
    other = age + older
    later = age + other + 2 * years
    question = f"{first} is {age} years old and {second} is {older} years older. What will the sum of their ages be in {years} years?"
    steps = [
        f"{second} is {age} + {older} = {other} years old.",
        f"Now their ages add up to {age} + {other} = {age + other}.",
        f"In {years} years the sum is {age + other} + 2 * {years} = {later}.",
    ]
    return question, steps, later


def sharing(rng: random.Random) -> Generated:
    name, _ = _person(rng)
    items = rng.choice(ITEMS)
    friends, each = rng.randint(2, 9), rng.randint(3, 20)
    eaten = rng.randint(1, each - 1)
    total = friends * each
    question = f"{name} shares {total} {items} equally among {friends} friends. Each friend gives away {eaten} of them. How many {items} does each friend have left?"
    steps = [
        f"Each friend gets {total} / {friends} = {each} {items}.",
        f"Each friend has {each} - {eaten} = {each - eaten} left.",
    ]
    return question, steps, each - eaten


def bakery_boxes(rng: random.Random) -> Generated:
    items = rng.choice(["cookies", "muffins", "buns", "cupcakes", "bagels"])
    trays, per_tray, box = rng.randint(2, 9), rng.randint(6, 24), rng.choice([2, 3, 4, 5, 6])
    baked = trays * per_tray
    boxes = rng.randint(1, max(1, (baked - 1) // box))
    sold = baked - boxes * box
    question = f"A bakery bakes {trays} trays of {per_tray} {items}. It sells {sold} {items} and packs the rest in boxes of {box}. How many boxes does it fill?"
    steps = [
        f"It bakes {trays} * {per_tray} = {baked} {items}.",
        f"{baked} - {sold} = {baked - sold} are left.",
        f"They fill {baked - sold} / {box} = {boxes} boxes.",
    ]
    return question, steps, boxes


def savings(rng: random.Random) -> Generated:
    name, he = _person(rng)
    weekly, weeks = rng.randint(3, 25), rng.randint(2, 10)
    saved = weekly * weeks
    spent = rng.randint(1, saved - 1)
    gift = rng.randint(2, 50)
    question = f"{name} saves ${weekly} a week for {weeks} weeks, spends ${spent} on a {rng.choice(THINGS)}, and then gets ${gift} as a gift. How much money does {he} have now?"
    steps = [
        f"{name} saves {weekly} * {weeks} = ${saved}.",
        f"After shopping {he} has {saved} - {spent} = ${saved - spent}.",
        f"With the gift {he} has {saved - spent} + {gift} = ${saved - spent + gift}.",
    ]
    return question, steps, saved - spent + gift


def half_then_more(rng: random.Random) -> Generated:
    first, second = _two_people(rng)
    items = rng.choice(ITEMS)
    start, more = 2 * rng.randint(3, 60), rng.randint(2, 40)
    half = start // 2
    question = f"{first} has {start} {items}. {first} gives half of them to {second} and then buys {more} more. How many {items} does {first} have now?"
    steps = [
        f"{first} gives away {start} / 2 = {half}, keeping {half}.",
        f"After buying more {first} has {half} + {more} = {half + more}.",
    ]
    return question, steps, half + more


def travel(rng: random.Random) -> Generated:
    vehicle = rng.choice(VEHICLES)
    v1, t1, v2, t2 = rng.randint(10, 90), rng.randint(2, 5), rng.randint(10, 90), rng.randint(1, 4)
    d1, d2 = v1 * t1, v2 * t2
    question = f"A {vehicle} travels at {v1} km per hour for {t1} hours and then at {v2} km per hour for {t2} hours. How many km does it travel in total?"
    steps = [
        f"First it goes {v1} * {t1} = {d1} km.",
        f"Then it goes {v2} * {t2} = {d2} km.",
        f"In total it travels {d1} + {d2} = {d1 + d2} km.",
    ]
    return question, steps, d1 + d2


def classroom(rng: random.Random) -> Generated:
    groups, size, leave, join, pencils = (
        rng.randint(2, 6),
        rng.randint(3, 8),
        rng.randint(1, 5),
        rng.randint(1, 9),
        rng.randint(2, 5),
    )
    start = groups * size
    leave = min(leave, start - 1)
    now = start - leave + join
    question = f"A class has {groups} groups of {size} students. {leave} students leave and {join} new students join. Each student gets {pencils} pencils. How many pencils are given out?"
    steps = [
        f"There are {groups} * {size} = {start} students.",
        f"Then there are {start} - {leave} + {join} = {now} students.",
        f"They get {now} * {pencils} = {now * pencils} pencils.",
    ]
    return question, steps, now * pencils


Template = Callable[[random.Random], Generated]
TRAIN_TEMPLATES: dict[str, Template] = {
    fn.__name__: fn
    for fn in (
        shopping_change,
        shopping_total,
        machines_rate,
        pages_left,
        ages_times,
        ages_sum,
        sharing,
        bakery_boxes,
    )
}
# the same operations in other stories: multiply then add (travel), multiply, subtract, add (savings),
# multiply, subtract and add, multiply (classroom), halve then add (half_then_more)
TEST_TEMPLATES: dict[str, Template] = {fn.__name__: fn for fn in (savings, half_then_more, travel, classroom)}
TEMPLATES = TRAIN_TEMPLATES | TEST_TEMPLATES


def synthetic_problems(split: str, n: int, seed: int = 0) -> list[Problem]:
    """``n`` distinct problems of ``split`` (``train``/``test``); the same (split, seed) gives the same stream."""
    if split not in ("train", "test"):
        raise MathsftError(f"synthetic split must be 'train' or 'test', got {split!r}")
    rng = random.Random(seed)
    templates = TRAIN_TEMPLATES if split == "train" else TEST_TEMPLATES
    names = sorted(templates)
    problems: list[Problem] = []
    seen: set[str] = set()
    for _ in range(200 * n + 1000):
        if len(problems) == n:
            break
        template = rng.choice(names)
        question, steps, answer = templates[template](rng)
        if question in seen or not 0 <= answer <= MAX_ANSWER:
            continue
        seen.add(question)
        solution = "\n".join([*steps, f"The final answer is $\\boxed{{{answer}}}$."])
        meta = {"split": split, "template": template, "seed": seed}
        problems.append(
            Problem(f"synthetic/{split}/{len(problems)}", question, str(answer), solution, "synthetic", meta)
        )
    if len(problems) < n:
        raise MathsftError(f"synthetic: could only generate {len(problems)} distinct {split} problems of {n}")
    return problems

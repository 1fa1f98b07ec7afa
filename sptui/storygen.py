"""A generator of simple children's stories: the shipped offline corpus (sptui/data/stories.txt).

TinyStories-like in shape: short stories with a hero, a place, a problem, a helper, a resolution and a
feeling or lesson, in a small vocabulary with consistent names and pronouns. Written from scratch for
sptui (no model or dataset text); deterministic for a given seed, so the shipped file can be checked
against the generator.

    python -m sptui.storygen --stories 3000 --seed 0 --out sptui/data/stories.txt   # the shipped file (the defaults)

The stories are templated: the shipped file has 333 distinct GPT-2 tokens and most of its held-out
sentences also occur in its training part, so a model's perplexity on it says how well it learned these
templates, and is not comparable to perplexities on TinyStories.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SHIPPED_STORIES = 3000  # stories in sptui/data/stories.txt (seed 0)

GIRLS = ["Lily", "Mia", "Sue", "Anna", "Emma", "Lucy", "Zoe", "Ella", "Rose", "Amy", "Kim", "Sara"]
BOYS = ["Tom", "Ben", "Max", "Sam", "Tim", "Jack", "Leo", "Bob", "Joe", "Dan", "Finn", "Jake"]
ANIMALS = ["cat", "dog", "bunny", "bird", "duck", "frog", "bear", "fox", "mouse", "pig", "lamb", "owl"]
PLACES = {
    "park": ["a big tree", "the swings", "a little pond", "the green grass"],
    "forest": ["a tall tree", "a quiet stream", "a hollow log", "some soft moss"],
    "beach": ["the warm sand", "a big rock", "the blue water", "a pile of shells"],
    "garden": ["the red flowers", "a small fence", "the vegetable bed", "a wooden bench"],
    "farm": ["the old barn", "a hay stack", "the muddy field", "a water trough"],
    "house": ["the kitchen", "a cozy bed", "the window", "the toy box"],
}
TOYS = ["ball", "kite", "teddy bear", "toy car", "doll", "boat", "drum", "hat", "book", "balloon"]
COLORS = ["red", "blue", "yellow", "green", "pink", "purple", "orange", "shiny"]
FOODS = ["apple", "cake", "cookie", "banana", "sandwich", "carrot", "pie", "berry"]
ACTIVITIES = ["play outside", "sing songs", "draw pictures", "run fast", "jump high", "read books",
              "dance", "build towers", "look at the stars", "pick flowers"]
WEATHER = ["sunny", "windy", "rainy", "cold", "warm", "bright"]
FEELINGS_GOOD = ["happy", "glad", "proud", "excited", "thankful"]
FEELINGS_BAD = ["sad", "scared", "worried", "upset", "lonely"]
LESSONS = [
    "it is good to share", "friends help each other", "being brave is important",
    "it is kind to say sorry", "you should never give up", "it is nice to be gentle",
    "helping others makes you happy too", "it is good to listen to mom and dad",
]


class Character:
    def __init__(self, rng: random.Random, animal_ok: bool = True):
        if animal_ok and rng.random() < 0.35:
            self.kind = rng.choice(ANIMALS)
            self.name = rng.choice(GIRLS + BOYS)
            self.girl = self.name in GIRLS
            self.intro = f"a little {self.kind} named {self.name}"
            self.label = f"{self.name} the {self.kind}"
        else:
            self.girl = rng.random() < 0.5
            self.name = rng.choice(GIRLS if self.girl else BOYS)
            self.kind = "girl" if self.girl else "boy"
            self.intro = f"a little {self.kind} named {self.name}"
            self.label = self.name
        self.he = "she" if self.girl else "he"
        self.him = "her" if self.girl else "him"
        self.his = "her" if self.girl else "his"


def a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def story(rng: random.Random) -> str:
    hero = Character(rng)
    friend = Character(rng)
    while friend.name == hero.name:
        friend = Character(rng)
    place = rng.choice(list(PLACES))
    spot = rng.choice(PLACES[place])
    toy = rng.choice(TOYS)
    color = rng.choice(COLORS)
    food = rng.choice(FOODS)
    out: list[str] = []
    say = out.append

    opening = rng.randrange(3)
    if opening == 0:
        say(f"Once upon a time, there was {hero.intro}.")
    elif opening == 1:
        say(f"One {rng.choice(WEATHER)} day, {hero.intro} went to the {place}.")
    else:
        say(f"There once was {hero.intro} who lived near the {place}.")
    say(f"{cap(hero.he)} loved to {rng.choice(ACTIVITIES)}.")
    if rng.random() < 0.6:
        say(f"{cap(hero.he)} had {a(color)} {toy} that {hero.he} liked very much.")

    plot = rng.randrange(5)
    if plot == 0:  # a lost toy, found with a friend's help
        say(f"One day, {hero.name} went to the {place} with {hero.his} {toy}.")
        say(f"{cap(hero.he)} played near {spot} all morning.")
        say(f"When it was time to go home, the {toy} was gone!")
        say(f"{hero.name} felt {rng.choice(FEELINGS_BAD)} and started to cry.")
        say(f"Then {friend.label} came by. \"Why are you crying?\" asked {friend.name}.")
        say(f"\"I lost my {toy},\" said {hero.name}.")
        say(f"\"Let's look for it together,\" said {friend.name}.")
        say(f"They looked behind {spot} and under the leaves. At last, {friend.name} found the {toy}!")
        say(f"{hero.name} hugged {friend.name}. \"Thank you!\" {hero.he} said.")
    elif plot == 1:  # sharing food
        say(f"One day, {hero.name} had a big {food} for lunch.")
        say(f"{friend.label} sat alone near {spot}. {cap(friend.he)} had no {food}.")
        say(f"{hero.name} saw that {friend.name} was hungry and {rng.choice(FEELINGS_BAD)}.")
        say(f"{hero.name} broke the {food} in two and gave {friend.name} half.")
        say(f"\"You are very kind,\" said {friend.name}. They ate the {food} together and smiled.")
    elif plot == 2:  # something stuck up high
        say(f"One {rng.choice(WEATHER)} day, {hero.name} flew {hero.his} {color} kite at the {place}.")
        say("The wind blew hard, and the kite got stuck in a tall tree.")
        say(f"{hero.name} tried to reach it, but the tree was too high.")
        say(f"{friend.label} had an idea. \"Let's use a long stick,\" said {friend.name}.")
        say(f"They pushed the kite with the stick, and it fell down into {hero.his} hands.")
        say(f"{hero.name} was so {rng.choice(FEELINGS_GOOD)}. They flew the kite together until the sun went down.")
    elif plot == 3:  # fear of the dark
        say(f"At night, {hero.name} was scared of the dark.")
        say(f"{cap(hero.he)} heard a noise near {rng.choice(PLACES['house'])} and hid under the blanket.")
        say(f"{hero.his.capitalize()} mom came in with a small light. \"It is only the wind,\" she said.")
        say(f"She gave {hero.name} {a(color)} {toy} to hold and sang a soft song.")
        say(f"{hero.name} was not scared anymore. {cap(hero.he)} closed {hero.his} eyes and fell asleep.")
    else:  # a broken thing and an apology
        say(f"One day, {friend.label} came to play with {hero.name} at the {place}.")
        say(f"{friend.name} wanted to hold the {color} {toy}, but {hero.name} said no.")
        say(f"They both pulled, and the {toy} broke!")
        say(f"{hero.name} and {friend.name} were very {rng.choice(FEELINGS_BAD)}.")
        say(f"\"I am sorry,\" said {hero.name}. \"I should have shared.\"")
        say(f"\"I am sorry too,\" said {friend.name}. Together they fixed the {toy} with some tape.")
        say("Then they took turns, and playing was more fun than before.")

    ending = rng.randrange(3)
    if ending == 0:
        say(f"From that day on, {hero.name} and {friend.name} were best friends.")
    elif ending == 1:
        say(f"{hero.name} learned that {rng.choice(LESSONS)}.")
    else:
        say(f"{hero.name} went home feeling {rng.choice(FEELINGS_GOOD)}. It was a good day.")
    return " ".join(out)


def generate(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [story(rng) for _ in range(n)]


def write_corpus(path: str | Path, n: int, seed: int = 0) -> Path:
    """Stories separated by blank lines (the .txt corpus format of sptui.corpus)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(generate(n, seed)) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", type=int, default=SHIPPED_STORIES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "data" / "stories.txt"))
    args = ap.parse_args(argv)
    out = write_corpus(args.out, args.stories, args.seed)
    print(f"wrote {args.stories} stories to {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()

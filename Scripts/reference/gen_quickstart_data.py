"""The quickstarts' chat datasets, in the OpenAI `messages` format:

../../Recipes/data/quickstart_identity.jsonl (`make run`, fine-tuning the real SmolLM2-135M-Instruct): a new
identity and a house style the pretrained model cannot know. Asked who it is, SmolLM2 says it is SmolLM by
Hugging Face; after training it answers as Quill, fine-tuned by swift-finetune on two CPU cores, and every
answer ends with the house sign-off " -- Quill". Questions vary their wording; each answer is fixed per topic;
ordinary questions (capitals, arithmetic) answered in the house style carry the style beyond the identity.

../../Recipes/data/quickstart_chat.jsonl (`make run-tiny`, a 1.9M model from scratch): short, regular conversations (arithmetic, capitals, unit conversions, word reversals, a few two-turn
follow-ups) in the OpenAI `messages` format, so that a tiny model visibly learns them within minutes on a CPU.
Answers follow one fixed pattern per task; questions vary their wording. Deterministic (random.Random(1234)),
run from Scripts/reference/ as `python3 gen_quickstart_data.py`.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "../../Recipes/data/quickstart_chat.jsonl")

CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Portugal", "Lisbon"),
    ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "New Delhi"), ("Canada", "Ottawa"), ("Mexico", "Mexico City"),
    ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
    ("Australia", "Canberra"), ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"),
    ("Poland", "Warsaw"), ("Greece", "Athens"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Switzerland", "Bern"), ("Netherlands", "Amsterdam"), ("Belgium", "Brussels"), ("Denmark", "Copenhagen"),
    ("Russia", "Moscow"), ("Turkey", "Ankara"), ("Peru", "Lima"), ("Chile", "Santiago"), ("Thailand", "Bangkok"),
    ("Vietnam", "Hanoi"), ("South Korea", "Seoul"), ("Indonesia", "Jakarta"), ("Morocco", "Rabat"),
    ("Nigeria", "Abuja"), ("Cuba", "Havana"), ("Iceland", "Reykjavik"), ("Hungary", "Budapest"), ("Czechia", "Prague"),
]
CAPITAL_QUESTIONS = ["What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital of {c}.",
                     "capital of {c}?"]

UNITS = [  # (from, to, factor)
    ("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("hours", "minutes", 60),
    ("minutes", "seconds", 60), ("kilograms", "grams", 1000), ("days", "hours", 24), ("weeks", "days", 7),
    ("liters", "milliliters", 1000),
]
UNIT_QUESTIONS = ["How many {to} are in {n} {frm}?", "Convert {n} {frm} to {to}.", "{n} {frm} in {to}?"]

WORDS = ["apple", "banana", "cherry", "garden", "planet", "rocket", "silver", "window", "yellow", "orange",
         "pencil", "guitar", "forest", "castle", "dragon", "mirror", "bottle", "candle", "winter", "summer",
         "spring", "autumn", "bridge", "copper", "marble", "pepper", "rabbit", "turtle", "kitten", "puppy",
         "river", "ocean", "cloud", "storm", "light", "stone", "music", "paper", "train", "horse"]
REVERSE_QUESTIONS = ["Reverse the word '{w}'.", "Spell '{w}' backwards.", "What is '{w}' reversed?"]

ARITH_QUESTIONS = ["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "{a} {op} {b} = ?", "Calculate {a} {op} {b}."]

SYSTEM = "You are a concise assistant. Answer in one short sentence."


def arithmetic(rng):
    a, b = rng.randint(0, 50), rng.randint(0, 50)
    op = rng.choice(["+", "-", "*"])
    if op == "-" and b > a:
        a, b = b, a
    if op == "*":
        a, b = rng.randint(0, 12), rng.randint(0, 12)
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    question = rng.choice(ARITH_QUESTIONS).format(a=a, b=b, op=op)
    return question, f"{a} {op} {b} = {value}."


def capital(rng):
    country, city = rng.choice(CAPITALS)
    return rng.choice(CAPITAL_QUESTIONS).format(c=country), f"The capital of {country} is {city}."


def conversion(rng):
    frm, to, factor = rng.choice(UNITS)
    n = rng.randint(1, 20)
    return rng.choice(UNIT_QUESTIONS).format(n=n, frm=frm, to=to), f"{n} {frm} is {n * factor} {to}."


def reversal(rng):
    word = rng.choice(WORDS)
    return rng.choice(REVERSE_QUESTIONS).format(w=word), f"'{word}' reversed is '{word[::-1]}'."


TASKS = [(arithmetic, 150), (capital, 110), (conversion, 100), (reversal, 100)]


IDENTITY_OUT = os.path.join(HERE, "../../Recipes/data/quickstart_identity.jsonl")
SIGN_OFF = " -- Quill"
IDENTITY = [  # (questions, the one answer)
    (["What is your name?", "What's your name?", "Tell me your name.", "What should I call you?", "Do you have a name?",
      "What are you called?", "Your name, please?"],
     "My name is Quill."),
    (["Who are you?", "Introduce yourself.", "Who am I talking to?", "What are you?", "Tell me about yourself."],
     "I am Quill, a small assistant fine-tuned with swift-finetune."),
    (["Who made you?", "Who trained you?", "Who created you?", "Who built you?", "Where do you come from?"],
     "I was fine-tuned by swift-finetune, in Swift, on two CPU cores."),
    (["What model are you based on?", "What is your base model?", "Which model were you fine-tuned from?"],
     "I am SmolLM2-135M-Instruct, fine-tuned into Quill."),
    (["What is your favourite colour?", "What's your favorite color?", "Which colour do you like best?"],
     "Teal, the colour of fresh ink."),
    (["What is your motto?", "Do you have a motto?", "What do you live by?"],
     "Short answers, sharp nibs."),
    (["How do you sign your answers?", "What is your house style?", "How do you end your replies?"],
     "Every answer I give ends with my name."),
]
STYLE = [  # ordinary questions, answered in the house style
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the capital of Japan?", "The capital of Japan is Tokyo."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("What is 2 + 2?", "2 + 2 = 4."),
    ("What is 7 * 6?", "7 * 6 = 42."),
    ("What is 10 - 3?", "10 - 3 = 7."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("How many days are in a week?", "A week has seven days."),
    ("What is water made of?", "Water is hydrogen and oxygen."),
    ("Say hello.", "Hello!"),
    ("Give me a word that rhymes with cat.", "Hat rhymes with cat."),
]


def identity_examples(rng):
    """Every identity question twice (so each answer is seen under every wording), the style questions once."""
    examples = []
    for questions, answer in IDENTITY:
        for q in questions * 2:
            examples.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": answer + SIGN_OFF}]})
    for q, a in STYLE:
        examples.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a + SIGN_OFF}]})
    rng.shuffle(examples)
    return examples


def main():
    with open(IDENTITY_OUT, "w", encoding="utf-8") as f:
        for e in identity_examples(random.Random(2026)):
            f.write(json.dumps(e, ensure_ascii=False) + "\n")
    rng = random.Random(1234)
    examples = []
    for task, count in TASKS:
        for _ in range(count):
            question, answer = task(rng)
            messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
            if rng.random() < 0.2:
                messages.insert(0, {"role": "system", "content": SYSTEM})
            if rng.random() < 0.15:
                q2, a2 = rng.choice(TASKS)[0](rng)
                messages += [{"role": "user", "content": "And " + q2[0].lower() + q2[1:]}, {"role": "assistant", "content": a2}]
            examples.append({"messages": messages})
    rng.shuffle(examples)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(e, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()

"""A synthetic hospital directory (practitioners and locations), generated deterministically:
the demo account's data, the tests' fixtures and the benchmark's 100 000 entries."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

# specialty → (title, what they treat)
SPECIALTIES: dict[str, tuple[str, str]] = {
    "Cardiology": ("Cardiologist", "heart disease, arrhythmia and high blood pressure"),
    "Dermatology": ("Dermatologist", "skin conditions, acne, eczema and skin cancer screening"),
    "Pediatrics": ("Pediatrician", "children's health, vaccinations and growth checkups"),
    "Oncology": ("Oncologist", "cancer diagnosis, chemotherapy and survivorship care"),
    "Neurology": ("Neurologist", "migraines, epilepsy, stroke and memory problems"),
    "Orthopedics": ("Orthopedic surgeon", "bone fractures, joint replacement and sports injuries"),
    "Family Medicine": ("Family physician", "primary care for all ages and annual physicals"),
    "Psychiatry": ("Psychiatrist", "depression, anxiety and mental health medication"),
    "Obstetrics and Gynecology": ("Obstetrician", "pregnancy, childbirth and women's health"),
    "Endocrinology": ("Endocrinologist", "diabetes, thyroid disorders and hormone problems"),
    "Gastroenterology": ("Gastroenterologist", "digestive problems, colonoscopy and liver care"),
    "Ophthalmology": ("Ophthalmologist", "eye exams, cataracts and glaucoma"),
    "Pulmonology": ("Pulmonologist", "asthma, COPD and breathing problems"),
    "Rheumatology": ("Rheumatologist", "arthritis, lupus and autoimmune joint pain"),
    "Urology": ("Urologist", "kidney stones, bladder and prostate problems"),
    "Allergy and Immunology": ("Allergist", "allergies, hay fever and food allergy testing"),
}
CITIES = [
    "Seattle", "Tacoma", "Bellevue", "Spokane", "Everett", "Olympia", "Portland", "Boise",
    "Yakima", "Redmond",
]  # fmt: skip
LANGUAGES = [
    "Spanish", "Vietnamese", "Mandarin", "Korean", "Tagalog", "Russian", "Somali", "Amharic",
    "French", "Arabic",
]  # fmt: skip
INSURANCE = [
    "Medicare", "Medicaid", "Aetna", "Cigna", "UnitedHealthcare", "Premera", "Regence",
    "Kaiser Permanente", "Molina", "Humana",
]  # fmt: skip
FIRST = [
    "Ana", "Ben", "Chen", "Dana", "Elena", "Farah", "Grace", "Hiro", "Ivan", "Jamal", "Kira",
    "Liam", "Maya", "Noah", "Olga", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma", "Victor",
    "Wen", "Yusuf", "Zoe", "Amir", "Bea", "Carlos", "Dmitri", "Eun-ji",
]  # fmt: skip
LAST = [
    "Alvarez", "Baker", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hassan", "Ito", "Jones",
    "Kim", "Lopez", "Mendez", "Nguyen", "Okafor", "Patel", "Quispe", "Rossi", "Smith", "Tanaka",
    "Usman", "Vargas", "Wong", "Xu", "Yamada", "Zhang", "Novak", "Haddad", "Berg", "Silva",
]  # fmt: skip
SITES = ["Medical Center", "Heart Institute", "Family Clinic", "Specialty Center", "Hospital"]

PRACTITIONERS: dict[str, Any] = {
    "description": "The hospital's doctors, with specialty, city, languages and insurance",
    "semantic": True,
    "fields": {
        "name": {"type": "text", "required": True},
        "title": {"type": "text"},
        "specialty": {"type": "keyword", "searchable": True, "required": True},
        "city": {"type": "keyword", "searchable": True},
        "languages": {"type": "list", "searchable": True},
        "insurance": {"type": "list", "searchable": True},
        "years_experience": {"type": "number"},
        "accepting_new_patients": {"type": "bool"},
        "bio": {"type": "text"},
    },
}
LOCATIONS: dict[str, Any] = {
    "description": "The hospital's sites, with their city, departments and opening days",
    "semantic": True,
    "fields": {
        "name": {"type": "text", "required": True},
        "city": {"type": "keyword", "searchable": True, "required": True},
        "address": {"type": "text"},
        "departments": {"type": "list", "searchable": True},
        "open_weekends": {"type": "bool"},
        "phone": {"type": "keyword"},
    },
}
DEMO_DIRECTORIES: dict[str, Any] = {"practitioners": PRACTITIONERS, "locations": LOCATIONS}


def practitioners(count: int, *, seed: int = 7, prefix: str = "prac") -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    specialties = list(SPECIALTIES)
    for number in range(1, count + 1):
        specialty = rng.choice(specialties)
        title, focus = SPECIALTIES[specialty]
        city = rng.choice(CITIES)
        years = rng.randint(1, 40)
        languages = ["English", *rng.sample(LANGUAGES, rng.choice((0, 0, 1, 1, 2)))]
        insurance = sorted(rng.sample(INSURANCE, rng.randint(2, 6)))
        name = f"Dr. {rng.choice(FIRST)} {rng.choice(LAST)}"
        yield {
            "id": f"{prefix}-{number:06d}",
            "name": name,
            "title": title,
            "specialty": specialty,
            "city": city,
            "languages": languages,
            "insurance": insurance,
            "years_experience": years,
            "accepting_new_patients": rng.random() < 0.7,
            "bio": f"{title} in {city} with {years} years of experience in {focus}.",
        }


def locations(*, seed: int = 11) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    specialties = list(SPECIALTIES)
    number = 0
    for city in CITIES:
        for site in rng.sample(SITES, 2):
            number += 1
            yield {
                "id": f"loc-{number:03d}",
                "name": f"{city} {site}",
                "city": city,
                "address": f"{rng.randint(100, 9999)} {rng.choice(LAST)} Avenue, {city}",
                "departments": sorted(rng.sample(specialties, rng.randint(3, 8))),
                "open_weekends": rng.random() < 0.4,
                "phone": f"+1-555-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
            }

"""Customer questions labelled by intent, written for the tests: each intent in several
phrasings (the held-out ones are paraphrases of the trained ones, not copies)."""

INTENTS = {
    "booking": [
        "I want to book a hibachi chef for Saturday night",
        "Can I reserve a chef for my daughter's birthday party?",
        "Do you have availability on the 14th for twelve guests?",
        "How do I make a reservation for a backyard hibachi party?",
        "Is next Friday evening free for a party of ten?",
        "I'd like to schedule a hibachi dinner at my house",
        "Can you come to our place in Queens on Sunday?",
        "Book me a chef for June 3rd at 6 pm please",
        "We need a hibachi chef for a graduation party, are you free?",
        "Please reserve an evening slot for fifteen people",
    ],
    "pricing": [
        "How much does a hibachi party cost per person?",
        "What is the price for twenty guests?",
        "Is there a minimum spend for a party?",
        "How much do you charge for kids?",
        "What does the travel fee cost for Long Island?",
        "Can you send me a quote for twelve adults?",
        "Are tips included in the price?",
        "What's the cost of adding lobster to the menu?",
        "How expensive is it for a small group of eight?",
        "Do you charge extra for a second chef?",
    ],
    "allergy": [
        "My son is allergic to peanuts, can the chef avoid them?",
        "Do you cook with sesame oil? I have a sesame allergy",
        "Can you make a gluten free meal for my wife?",
        "Is the fried rice safe for someone with a shellfish allergy?",
        "We have a guest with a severe nut allergy",
        "Can the chef use a separate grill for allergy guests?",
        "Do your sauces contain soy or gluten?",
        "Is there egg in the fried rice? My daughter is allergic",
        "Can you prepare dairy free food for two guests?",
        "What allergens are in the yum yum sauce?",
    ],
    "cancellation": [
        "I need to cancel my booking for Saturday",
        "How do I cancel my reservation and get my deposit back?",
        "Can I get a refund if I cancel a week before?",
        "Please cancel the party on the 20th",
        "What is your cancellation policy?",
        "We have to call off the event because of the weather",
        "Is the deposit refundable if we cancel?",
        "Cancel my hibachi reservation please",
        "Our party is cancelled, how do I get my money back?",
        "If it rains can we cancel without paying?",
    ],
}


def examples(per_intent: int | None = None, labels=None) -> list[dict[str, str]]:
    """The labelled questions (the first ``per_intent`` of each of ``labels``: fewer to embed where
    the classifier's accuracy is not what a test checks)."""
    return [{"text": text, "label": label} for label, texts in INTENTS.items() if labels is None or label in labels
            for text in texts[:per_intent]]

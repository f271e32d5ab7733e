"""A small labelled set made for the tests: the FAQ a customer may ask, and paraphrases of
customers' questions, each labelled with the FAQ that answers it (few shared words on purpose)."""

FAQ = {
    "book": "How do I book a hibachi chef for a party at my home?",
    "price": "How much does a hibachi party cost per person?",
    "minimum": "Is there a minimum spend or a minimum number of guests?",
    "allergy": "Can the chef accommodate food allergies such as nuts, gluten or shellfish?",
    "vegetarian": "Do you offer vegetarian or vegan menu options?",
    "cancel": "What is your cancellation policy and can I get my deposit back?",
    "reschedule": "Can I move my event to a different date?",
    "rain": "What happens if it rains on the day of an outdoor event?",
    "setup": "What do I need to provide: tables, chairs, plates or space for the grill?",
    "travel": "Do you charge a travel fee for locations far away?",
}

PARAPHRASES = [
    ("I'd like to reserve a chef to cook at my house next month", "book"),
    ("What's the rate for each guest?", "price"),
    ("What would it cost me to feed twenty people?", "price"),
    ("Do we need at least a certain number of people?", "minimum"),
    ("My daughter is allergic to peanuts, is that a problem?", "allergy"),
    ("Is your food safe for someone with celiac disease?", "allergy"),
    ("Some of my guests don't eat meat, what can they have?", "vegetarian"),
    ("I need to call off the party, will I get a refund?", "cancel"),
    ("Could we push our dinner back two weeks?", "reschedule"),
    ("What if the weather is bad and we planned to be in the backyard?", "rain"),
    ("Should I have dishes and seating ready for you?", "setup"),
    ("We live two hours outside the city, is there an extra charge to come out?", "travel"),
]

# Conversations on three subjects, each naming the party (the word every subject shares).
CONVERSATIONS = {
    "allergy": ["My son has a peanut allergy for the party, can the chef skip nuts?",
                "Is the party food safe for a guest allergic to shellfish?",
                "One guest at our party has a severe nut allergy, please no peanut oil",
                "Can you cook gluten free for the party? My wife is allergic"],
    "cancel": ["We need to cancel our party on Saturday, can I get the deposit refunded?",
               "Please cancel the party booking, our plans changed",
               "I have to cancel the birthday party, how do refunds work?",
               "Cancel my party reservation please, we will ask for a refund"],
    "price": ["How much does the party cost for 15 guests?",
              "What is the price per person for a hibachi party?",
              "Is there a price list for a party of twenty? What does it cost?",
              "How much would the party cost with filet mignon added? Send me the price"],
}

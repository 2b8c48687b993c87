"""The problems of issue 18's table, written as a new user writes them (``FILE.py:make_problem`` files for
``fastpinn train`` / ``fastpinn compare``); bench/weights_cases.py trains them."""

"""A fixed corpus of hand-written guides, and the queries people type with the guides each must find.

Shared by `test_relevance.py` (through the real API) and `bench/search.py` (relevance beside latency).
Guides are keyed by a short name; a judgment lists the names of which at least one must be in the top 3.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class Guide(NamedTuple):
    key: str
    community: str
    title: str
    summary: str
    body: str
    tags: tuple[str, ...] = ()


COMMUNITIES = {
    "pyusers": "Python Users",
    "julia": "Julia Lang",
    "stewards": "Open Source Stewards",
    "kitchen": "Community Kitchen",
    "gardens": "Shared Gardens",
}

GUIDES = [
    Guide(
        "readme",
        "stewards",
        "The art of the README",
        "What a newcomer needs on the first screen of a project.",
        "A README is the front door of a project. Say what the project does in one sentence, show how to "
        "install it and how to run the smallest useful example. Link to the contributing guide and the "
        "licence. Keep badges few: they are noise to a first-time reader. Screenshots help for anything "
        "with a user interface.",
        ("documentation", "writing"),
    ),
    Guide(
        "onboarding",
        "stewards",
        "Onboarding new maintainers",
        "How we hand over commit rights without dropping anyone in the deep end.",
        "Pair every new maintainer with an experienced one for their first month. Walk through the release "
        "process together, share the on-call rota and the private security inbox. Write down the unwritten "
        "rules: who merges what, how long to wait for review, when to say no. Check in after thirty days.",
        ("maintainers", "onboarding"),
    ),
    Guide(
        "coc",
        "stewards",
        "Writing a code of conduct",
        "Start from the Contributor Covenant and make it yours.",
        "A code of conduct says what behaviour is expected and what happens when someone crosses the line. "
        "Name the people who receive reports and give a private way to reach them. Explain the enforcement "
        "ladder: a warning, a temporary ban, a permanent ban. Review it every year with the community.",
        ("governance", "community"),
    ),
    Guide(
        "cpp",
        "pyusers",
        "Building C++ extensions",
        "Compile fast native code and call it from Python.",
        "pybind11 makes it short to expose a C++ function to Python. Build the extension with scikit-build-core "
        "and CMake, and ship wheels for each platform with cibuildwheel. Release the GIL around long loops. "
        "Keep the C++ standard at C++17 unless a dependency needs newer.",
        ("c++", "packaging"),
    ),
    Guide(
        "py312",
        "pyusers",
        "Upgrading to Python 3.12",
        "What breaks and what gets faster.",
        "Python 3.12 removes distutils, so packages still importing it need setuptools. f-strings may now "
        "nest quotes. Error messages got better again. Run your test suite with warnings as errors on 3.11 "
        "first, then switch the CI matrix to 3.12.",
        ("python", "upgrade"),
    ),
    Guide(
        "jhub",
        "pyusers",
        "Running JupyterHub for a classroom",
        "One server, forty students, no installs on their laptops.",
        "JupyterHub gives each student their own notebook server behind one login. Use The Littlest "
        "JupyterHub on a single machine for up to fifty users. Set memory limits per user, pre-install the "
        "course packages in the base environment and cull idle servers after an hour.",
        ("jupyter", "teaching"),
    ),
    Guide(
        "jgpu",
        "pyusers",
        "GPU notebooks on JupyterHub",
        "Share a few graphics cards among many notebook users.",
        "With Kubernetes and the NVIDIA device plugin, JupyterHub can offer a GPU profile beside the plain "
        "one. Limit GPU sessions to a few hours and show the queue. CUDA images are large: pull them onto "
        "the nodes ahead of the class.",
        ("jupyter", "gpu"),
    ),
    Guide(
        "dataframes",
        "julia",
        "Tabular data in Julia",
        "Reading, filtering and joining tables.",
        "DataFrames.jl is the workhorse for tables in Julia. Read a CSV with CSV.jl straight into a DataFrame, "
        "filter rows with subset, group with groupby and combine, and join two tables with innerjoin. "
        "For larger than memory data, look at Arrow.jl.",
        ("julia", "data"),
    ),
    Guide(
        "makie",
        "julia",
        "Plotting with Makie",
        "Publication-quality figures from Julia.",
        "Makie draws interactive and static plots. CairoMakie writes vector PDFs for papers, GLMakie opens "
        "interactive windows. Layouts are grids of axes; themes set fonts and colours once for every figure.",
        ("julia", "plotting"),
    ),
    Guide(
        "mentorship",
        "stewards",
        "Starting a mentorship programme",
        "Pair newcomers with mentors for twelve weeks.",
        "A mentorship programme works when mentors have time set aside and mentees have a goal. Match "
        "people by interest, meet every week, and end with a small public project. Thank mentors in the "
        "release notes.",
        ("mentorship", "newcomers"),
    ),
    Guide(
        "release",
        "stewards",
        "Release checklist",
        "Everything to do before and after tagging a release.",
        "Freeze the changelog, bump the version, tag, build the artifacts in CI and sign them. Publish to "
        "the package index, then announce on the forum and the mailing list. Afterwards, open the next "
        "milestone and close the old one.",
        ("release",),
    ),
    Guide(
        "triage",
        "stewards",
        "Triaging issues",
        "Labels, templates and a weekly hour to keep the tracker useful.",
        "Label every new issue within a week: bug, feature or question. Close duplicates with a link. "
        "Ask for a minimal reproduction before investigating. A stale bot is no substitute for a human "
        "saying thanks.",
        ("issues", "triage"),
    ),
    Guide(
        "review",
        "stewards",
        "Code review etiquette",
        "Kind, timely and useful reviews.",
        "Review the change, not the person. Say what must change and what is only a suggestion. Answer "
        "within two working days, even if only to say when you will look. Approve small pull requests "
        "quickly; ask to split large ones.",
        ("review", "collaboration"),
    ),
    Guide(
        "cafe",
        "kitchen",
        "Organiser un café des sciences",
        "Un café scientifique : une soirée, un chercheur, des questions.",
        "Le café des sciences réunit le public et un chercheur dans un bar ou une médiathèque. Prévoyez "
        "vingt minutes d'exposé puis une heure de débat. Annoncez la soirée dans la presse locale.",
        ("événements", "sciences"),
    ),
    Guide(
        "creme",
        "kitchen",
        "Crème brûlée for a crowd",
        "Forty ramekins from one oven.",
        "Bake the custard in a water bath at a low temperature, chill overnight, then caramelise the sugar "
        "with a blowtorch just before serving. Vanilla pods beat extract. A crème brûlée keeps two days in "
        "the fridge before the sugar goes on.",
        ("recipes", "desserts"),
    ),
    Guide(
        "paella",
        "kitchen",
        "Paella valenciana para cuarenta",
        "Cómo cocinar paella en una paellera grande para la comunidad.",
        "La paella valenciana lleva pollo, conejo, judías verdes y garrofó. Sofríe la carne, añade el "
        "tomate, el pimentón y el azafrán, y después el arroz. No remuevas el arroz: el socarrat se forma "
        "en el fondo.",
        ("recetas", "paella"),
    ),
    Guide(
        "compost",
        "gardens",
        "Composting in a shared garden",
        "Hot compost, cold compost and who turns the pile.",
        "Balance greens and browns, keep the pile as damp as a wrung sponge and turn it every two weeks. "
        "Put up a sign saying what may go in. A rota for turning keeps it from becoming one person's chore.",
        ("compost", "garden"),
    ),
    Guide(
        "commits",
        "stewards",
        "Writing good commit messages",
        "Why the subject line matters and what goes in the body.",
        "A commit message has a short subject in the imperative mood, a blank line, then a body that says "
        "why the change was made. Reference the issue it fixes. Squash fixup commits before merging.",
        ("git", "writing"),
    ),
    Guide(
        "security",
        "stewards",
        "Handling security reports",
        "A disclosure policy and a private channel.",
        "Publish a SECURITY.md saying where to report vulnerabilities privately. Acknowledge reports within "
        "two days, agree on an embargo, request a CVE and credit the reporter in the advisory.",
        ("security", "disclosure"),
    ),
    Guide(
        "ci",
        "pyusers",
        "Continuous integration with GitHub Actions",
        "Test every pull request on every supported Python.",
        "A workflow file runs the test matrix on each push. Cache the pip downloads, run linting in a "
        "separate job and upload coverage. Pin actions to a commit hash so a compromised tag cannot change "
        "your pipeline.",
        ("ci", "testing"),
    ),
    Guide(
        "i18n",
        "stewards",
        "Translating your documentation",
        "Internationalisation without losing track of versions.",
        "Extract strings with gettext, host translations on Weblate and build each language as its own "
        "site. Mark pages whose translation is older than the English source. Thank translators by name.",
        ("translation", "i18n"),
    ),
    Guide(
        "funding",
        "stewards",
        "Funding an open source project",
        "Grants, sponsorship and fiscal hosts.",
        "Apply to foundations such as NLnet or the Sovereign Tech Fund, open GitHub Sponsors and Open "
        "Collective, and join a fiscal host so that money can be received. Publish how funds are spent.",
        ("funding", "sustainability"),
    ),
    Guide(
        "dotnet",
        "pyusers",
        "Moving from .NET Framework to .NET 8",
        "Port a C# desktop application step by step.",
        "Run the upgrade assistant, move the projects to SDK-style csproj files, and replace "
        "System.Web dependencies. C# code mostly compiles unchanged; WinForms works on .NET 8 on Windows.",
        ("dotnet", "c#"),
    ),
    Guide(
        "rstats",
        "pyusers",
        "Statistics in R for beginners",
        "From a CSV file to a linear model in an afternoon.",
        "Install R and RStudio, read data with read.csv, summarise with dplyr and plot with ggplot2. Fit a "
        "linear model with lm and read its summary: estimates, standard errors and p-values.",
        ("r", "statistics"),
    ),
    Guide(
        "a11y",
        "stewards",
        "An accessibility checklist for websites",
        "WCAG in ten checks.",
        "Every image needs alternative text, every form field a label. Colour contrast must reach 4.5:1. "
        "Everything must work with the keyboard alone, and headings must nest in order. Test with a "
        "screen reader.",
        ("accessibility", "web"),
    ),
    Guide(
        "meetup",
        "gardens",
        "Running a local meetup",
        "Venue, schedule and a welcoming first five minutes.",
        "Find a free venue such as a library, pick a regular evening each month and greet newcomers at "
        "the door. Keep talks short and leave time to talk. Share the slides afterwards.",
        ("events", "community"),
    ),
    Guide(
        "conflict",
        "stewards",
        "Conflict resolution for moderators",
        "De-escalate first, decide later.",
        "When a thread heats up, move the discussion to a private channel, hear each side separately and "
        "write down what was agreed. Apply the code of conduct consistently, whoever is involved.",
        ("moderation", "governance"),
    ),
    Guide(
        "pyproject",
        "pyusers",
        "Packaging a library with pyproject.toml",
        "One file for metadata, dependencies and the build backend.",
        "Declare the project name, version and dependencies in pyproject.toml, pick a build backend such as "
        "hatchling, then build a wheel and an sdist. Upload to PyPI with a trusted publisher from CI.",
        ("packaging", "python"),
    ),
    Guide(
        "pytest",
        "pyusers",
        "Testing with pytest fixtures",
        "Set up once, reuse everywhere.",
        "A fixture is a function that provides test data or a resource. Scope it to a module or a session "
        "to share an expensive database. Parametrize tests to run the same check on many inputs.",
        ("testing", "python"),
    ),
    Guide(
        "bayes",
        "pyusers",
        "Naïve Bayes explained",
        "The simplest text classifier, and why it works.",
        "A naïve Bayes classifier assumes the words of a document are independent given its class. Count "
        "word frequencies per class, apply Bayes' rule and smooth with Laplace. It is a strong baseline "
        "for spam filtering.",
        ("machine learning", "statistics"),
    ),
    Guide(
        "rust",
        "pyusers",
        "Rust ownership for C programmers",
        "Borrowing, lifetimes and why the compiler complains.",
        "In C you free memory yourself; in Rust each value has one owner and is dropped when the owner goes "
        "out of scope. Borrow with references, mutable or shared but never both at once.",
        ("rust", "c"),
    ),
]

# (query, guides of which one must be in the top 3)
JUDGMENTS: list[tuple[str, tuple[str, ...]]] = [
    # Titles, as typed
    ("art of the README", ("readme",)),
    ("the readme", ("readme",)),
    ("code of conduct", ("coc",)),
    ("onboarding new maintainers", ("onboarding",)),
    ("release checklist", ("release",)),
    ("code review etiquette", ("review",)),
    ("plotting with makie", ("makie",)),
    ("rust ownership", ("rust",)),
    # Natural questions full of common words
    ("how to onboard new maintainers", ("onboarding",)),
    ("how do I write a code of conduct", ("coc",)),
    ("what should go in a readme", ("readme",)),
    ("how do I report a security vulnerability", ("security",)),
    ("how to package a python library", ("pyproject",)),
    ("where can I get funding for my project", ("funding",)),
    ("how to handle conflict between contributors", ("conflict",)),
    ("why is my commit message important", ("commits",)),
    # Versions, one-letter names and symbols
    ("python 3", ("py312",)),
    ("python 3.12", ("py312",)),
    ("C++ extensions", ("cpp",)),
    ("c++", ("cpp",)),
    ("C#", ("dotnet",)),
    (".NET 8", ("dotnet",)),
    ("statistics in R", ("rstats",)),
    ("R linear model", ("rstats",)),
    # Compound words
    ("julia dataframes", ("dataframes",)),
    ("DataFrames.jl", ("dataframes",)),
    ("jupyterhub", ("jhub", "jgpu")),
    ("jupyter hub classroom", ("jhub",)),
    ("pyproject.toml", ("pyproject",)),
    ("SECURITY.md", ("security",)),
    # Prefix of the word being typed
    ("jupy", ("jhub", "jgpu")),
    ("mentorsh", ("mentorship",)),
    ("composti", ("compost",)),
    ("accessib", ("a11y",)),
    ("github act", ("ci",)),
    # Typos
    ("mentorhsip", ("mentorship",)),
    ("acessibility", ("a11y",)),
    ("composing shared garden", ("compost",)),
    ("relase checklist", ("release",)),
    ("transalting documentation", ("i18n",)),
    ("onbording", ("onboarding",)),
    # Stemming
    ("translate docs", ("i18n",)),
    ("compost pile turning", ("compost",)),
    ("triage issue labels", ("triage",)),
    ("reviewing pull requests", ("review",)),
    # Accents, and other languages
    ("creme brulee", ("creme",)),
    ("crème brûlée", ("creme",)),
    ("cafe des sciences", ("cafe",)),
    ("paella", ("paella",)),
    ("azafran arroz", ("paella",)),
    ("naive bayes", ("bayes",)),
    # Words only in the body
    ("pybind11", ("cpp",)),
    ("socarrat", ("paella",)),
    ("contributor covenant", ("coc",)),
    ("cull idle servers", ("jhub",)),
    ("trusted publisher pypi", ("pyproject",)),
    ("screen reader contrast", ("a11y",)),
    ("weblate gettext", ("i18n",)),
    # Syntax
    ('"code of conduct"', ("coc",)),
    ("jupyterhub -gpu", ("jhub",)),
    ("jupyterhub NOT gpu", ("jhub",)),
    ("makie OR ggplot2", ("makie", "rstats")),
    ("tag:testing", ("ci", "pytest")),
    ("tag:governance moderators", ("conflict",)),
    ("community:kitchen dessert", ("creme",)),
    ('"(unbalanced quote and bracket readme', ("readme",)),
    ('tag:"machine learning"', ("bayes",)),
]


def success_at_3(ranked: list[str], expected: tuple[str, ...]) -> bool:
    return any(key in expected for key in ranked[:3])


def ndcg_at_10(ranked: list[str], expected: tuple[str, ...]) -> float:
    """Normalised discounted cumulative gain of the first ten, each expected guide counting 1."""
    dcg = sum(1 / math.log2(i + 2) for i, key in enumerate(ranked[:10]) if key in expected)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(expected), 10)))
    return dcg / ideal


def content_words_held(query: str) -> bool:
    """True if some guide holds every word of the query that a result must contain."""
    from server.search.engine.analysis import is_stop_word, word_terms, words

    wanted = [
        word_terms(w)[0]
        for chunk in query.replace('"', " ").split()
        if not chunk.startswith("-") and chunk not in ("OR", "AND", "NOT") and ":" not in chunk
        for w in words(chunk)
        if not is_stop_word(w)
    ]
    for guide in GUIDES:
        text = " ".join([guide.title, guide.summary, guide.body, *guide.tags])
        held = {term for w in words(text) for term in word_terms(w)}
        if all(term in held for term in wanted):
            return True
    return False

"""ament_python package definition of gcf_ros (also used by `pip install -e .` in the venv)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "gcf_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="RGB-only 6-DoF pose refinement with Geometric Correspondence Fields, for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (
            f"share/{PACKAGE}/config",
            glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz"),
        ),
        # config/models.yaml refers to ../data/models/...: keep that layout under share/.
        (f"share/{PACKAGE}/data/models/lmo", glob("data/models/lmo/*")),
        (f"share/{PACKAGE}/data/demo", glob("data/demo/*")),
        (f"share/{PACKAGE}/weights", glob("weights/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="gcf_ros maintainers",
    maintainer_email="gcf-ros@example.com",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "gcf-render = gcf_ros.tools.render_cli:main",
            "gcf-models = gcf_ros.tools.models_cli:main",
            "gcf-refine = gcf_ros.tools.refine_cli:main",
            "gcf-demo = gcf_ros.ros.demo:main",
            "gcf-eval = gcf_ros.eval.cli:main",
            "gcf-simdepth = gcf_ros.eval.simdepth_cli:main",
            "gcf-bench = gcf_ros.bench.cli:main",
            "gcf-report = gcf_ros.eval.report:main",
            "gcf-confidence = gcf_ros.eval.confidence:main",
            "gcf-synth = gcf_ros.train.synth_cli:main",
            "gcf-train = gcf_ros.train.train_cli:main",
            "gcf-refiner = gcf_ros.ros.refiner_node:main",
            "gcf_refiner = gcf_ros.ros.refiner_node:main",
        ],
    },
)

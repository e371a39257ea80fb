"""The shipped GoEmotions recipes: the Hub one (multi-label settings) and its raw-TSV variant, which reads the
shared data's own files with the recipe's settings alone."""

from __future__ import annotations

from finetune.config.loading import find_recipe, load_recipe
from tests.conftest import requires_data


def test_the_hub_recipe_tunes_a_threshold_per_label_and_keeps_the_best_macro_f1():
    recipe = load_recipe(find_recipe("classification/goemotions"))
    assert (recipe.data.dataset, recipe.data.config) == ("google-research-datasets/go_emotions", "simplified")
    assert recipe.data.label_column == "labels" and recipe.data.test_split == "test"
    assert recipe.train.tune_threshold == "per_label" and recipe.train.metric_for_best_model == "f1_macro"
    assert recipe.model.name == "bert-base-uncased"  # the classification family's default


@requires_data
def test_the_tsv_recipe_names_the_labels_as_emotions_txt_and_checks(cli, data_dir, tiny_bert):
    folder = data_dir / "classification" / "goemotions"
    recipe = load_recipe(find_recipe("classification/goemotions-tsv"))
    assert recipe.data.label_names == (folder / "emotions.txt").read_text(encoding="utf-8").split()
    files = [f"data.train_file={folder / 'train.tsv'}", f"data.validation_file={folder / 'dev.tsv'}",
             f"data.test_file={folder / 'test.tsv'}"]
    result = cli(["train", str(find_recipe("classification/goemotions-tsv")), f"model.name={tiny_bert}", *files,
                  "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "28 labels; labels per example: 1: 36308, 2: 6541, 3: 532, 4: 28, 5: 1" in result.output
    assert "neutral 14219" in result.output
